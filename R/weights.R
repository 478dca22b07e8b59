#' Get or set a layer's weights
#'
#' `get_weights()` returns the weights as a list of arrays: the depthwise
#' kernel of dim `c(kernel_rows, kernel_cols, channels, depth_multiplier)`
#' and, when `use_bias = TRUE`, the bias of length `channels *
#' depth_multiplier`. `set_weights()` replaces them after checking their
#' shapes. `count_params()` counts the numbers in them.
#'
#' @param object A built layer made by [layer_depthwise_conv_2d()].
#' @param weights A list like the one `get_weights()` returns.
#' @returns `get_weights()`: a list of arrays. `set_weights()`: `object`,
#'   invisibly (modified in place). `count_params()`: a number.
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3)
#' y <- layer(random_uniform(c(1, 5, 5, 2)))
#' w <- get_weights(layer)
#' str(w)
#' w[[1]][] <- 1
#' set_weights(layer, w)
#' count_params(layer)
get_weights <- function(object) {
  check_layer(object)
  state <- layer_state(object)
  check_built(state, "get")
  layer_weights(state)
}

layer_weights <- function(state) {
  if (is.null(state$bias)) list(state$kernel) else list(state$kernel, state$bias)
}

#' @rdname get_weights
#' @export
set_weights <- function(object, weights) {
  check_layer(object)
  state <- layer_state(object)
  check_built(state, "set")
  expected <- layer_weights(state)
  if (!is.list(weights) || is.data.frame(weights) || length(weights) != length(expected)) {
    abort_depthwise(
      c(sprintf("`weights` must be a list of %d array%s for layer \"%s\"", length(expected),
                if (length(expected) > 1) "s" else "", state$config$name),
        x = sprintf("You supplied %s.", format_value(weights)),
        i = if (length(expected) == 2) "The list is `list(kernel, bias)`." else "The list is `list(kernel)` (the layer has no bias)."),
      if (is.list(weights)) "shape" else "type"
    )
  }
  kernel <- check_weight(weights[[1]], dim(expected[[1]]), "weights[[1]] (kernel)")
  bias <- if (length(expected) == 2L) check_weight(weights[[2]], length(expected[[2]]), "weights[[2]] (bias)")
  state$kernel <- kernel
  state$bias <- bias
  invisible(object)
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

#' @rdname get_weights
#' @export
count_params <- function(object) {
  check_layer(object)
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
