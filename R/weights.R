#' Get or set weights, count parameters, apply constraints
#'
#' `get_weights()` returns the weights as a list of arrays. For a layer: the
#' depthwise kernel of dim `c(kernel_rows, kernel_cols, channels,
#' depth_multiplier)` and, when `use_bias = TRUE`, the bias of length
#' `channels * depth_multiplier`. For a model: the weights of its layers, in
#' order, in one flat list. `set_weights()` replaces them after checking
#' every shape. `count_params()` counts the numbers in them.
#' `apply_constraints()` runs the layers' `depthwise_constraint` and
#' `bias_constraint` on the current weights (Keras applies them after each
#' optimizer step; here you decide when).
#'
#' @param object A built layer made by [layer_depthwise_conv_2d()], or a model
#'   made by [keras_model_sequential()].
#' @param weights A list like the one `get_weights()` returns.
#' @param constrain `TRUE` to apply the layers' constraints to the new weights
#'   (see [constraints]).
#' @returns `get_weights()`: a list of arrays. `set_weights()` and
#'   `apply_constraints()`: `object`, invisibly (modified in place).
#'   `count_params()`: a number.
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, depthwise_constraint = constraint_nonneg())
#' y <- layer(random_uniform(c(1, 5, 5, 2)))
#' w <- get_weights(layer)
#' str(w)
#' w[[1]][] <- -1
#' set_weights(layer, w, constrain = TRUE)
#' range(get_weights(layer)[[1]])
#' count_params(layer)
get_weights <- function(object) UseMethod("get_weights")

#' @rdname get_weights
#' @export
set_weights <- function(object, weights, constrain = FALSE) UseMethod("set_weights")

#' @rdname get_weights
#' @export
count_params <- function(object) UseMethod("count_params")

#' @rdname get_weights
#' @export
apply_constraints <- function(object) UseMethod("apply_constraints")

#' @export
get_weights.default <- function(object) check_layer_or_model(object)
#' @export
set_weights.default <- function(object, weights, constrain = FALSE) check_layer_or_model(object)
#' @export
count_params.default <- function(object) check_layer_or_model(object)
#' @export
apply_constraints.default <- function(object) check_layer_or_model(object)

#' @export
get_weights.depthwise_layer <- function(object) {
  state <- layer_state(object)
  check_built(state, "get")
  layer_weights(state)
}

layer_weights <- function(state) {
  if (is.null(state$bias)) list(state$kernel) else list(state$kernel, state$bias)
}

#' @export
set_weights.depthwise_layer <- function(object, weights, constrain = FALSE) {
  constrain <- check_flag(constrain)
  state <- layer_state(object)
  check_built(state, "set")
  new <- checked_layer_weights(state, weights)
  if (constrain) new <- constrained_weights(state, new)
  state$kernel <- new$kernel
  state$bias <- new$bias
  invisible(object)
}

# Validates a weight list for one layer -> list(kernel, bias).
checked_layer_weights <- function(state, weights, arg = "weights", call = rlang::caller_env()) {
  expected <- layer_weights(state)
  if (!is.list(weights) || is.data.frame(weights) || length(weights) != length(expected)) {
    abort_depthwise(
      c(sprintf("`%s` must be a list of %d array%s for layer \"%s\"", arg, length(expected),
                if (length(expected) > 1) "s" else "", state$config$name),
        x = sprintf("You supplied %s.", format_value(weights)),
        i = if (length(expected) == 2) "The list is `list(kernel, bias)`." else "The list is `list(kernel)` (the layer has no bias)."),
      if (is.list(weights)) "shape" else "type", call = call
    )
  }
  list(
    kernel = check_weight(weights[[1]], dim(expected[[1]]), sprintf("%s[[1]] (kernel)", arg), call = call),
    bias = if (length(expected) == 2L) check_weight(weights[[2]], length(expected[[2]]), sprintf("%s[[2]] (bias)", arg), call = call)
  )
}

check_weight <- function(w, dims, arg, call = rlang::caller_env()) {
  if (!(is.numeric(w) || is.logical(w)) || is.object(w) && !is.array(w)) {
    abort_depthwise(
      c(sprintf("`%s` must be a numeric array", arg), x = sprintf("You supplied %s.", format_value(w))),
      "type", call = call
    )
  }
  given <- dim(w) %||% length(w)
  if (!identical(as.numeric(given), as.numeric(dims))) {
    abort_depthwise(
      c(sprintf("`%s` must have shape %s", arg, format_dims(dims)),
        x = sprintf("You supplied shape %s.", format_dims(given))),
      "shape", call = call
    )
  }
  array(as.double(w), dims)
}

constrained_weights <- function(state, weights, call = rlang::caller_env()) {
  cfg <- state$config
  if (!is.null(cfg$depthwise_constraint)) {
    weights$kernel <- constrained(cfg$depthwise_constraint, weights$kernel, "depthwise", call = call)
  }
  if (!is.null(cfg$bias_constraint) && !is.null(weights$bias)) {
    weights$bias <- constrained(cfg$bias_constraint, weights$bias, "bias", call = call)
  }
  weights
}

#' @export
apply_constraints.depthwise_layer <- function(object) {
  state <- layer_state(object)
  check_built(state, "constrain")
  new <- constrained_weights(state, list(kernel = state$kernel, bias = state$bias))
  state$kernel <- new$kernel
  state$bias <- new$bias
  invisible(object)
}

#' @export
count_params.depthwise_layer <- function(object) {
  state <- layer_state(object)
  if (!state$built) {
    abort_depthwise(
      c(sprintf("You tried to call `count_params()` on layer \"%s\", but the layer isn't built", state$config$name),
        i = "Call it on an array, or use `build(layer, input_shape)`, first."),
      "state"
    )
  }
  count_layer_params(state)
}
