#' A sequential model
#'
#' A stack of layers applied one after the other, as keras3's
#' `keras_model_sequential()`. Add layers by passing the model as `object`
#' to a layer function: `model |> layer_depthwise_conv_2d(3)`. The model is
#' modified in place and also returned, so both the pipe and
#' `layer_depthwise_conv_2d(model, 3)` without re-assignment work. A model is
#' a function: `model(x)` runs the layers on `x`; [predict()][predict.depthwise_model]
#' does the same in batches.
#'
#' When the model knows its input shape (`input_shape` here, or once it has
#' been called or built), each added layer is built at once and checked
#' against the output of the layers before it.
#'
#' @param input_shape `NULL`, or the shape of one sample without the batch
#'   dimension, such as `c(28, 28, 3)`.
#' @param name `NULL` (a name such as `"sequential"` is generated) or a string.
#' @param ... Named options: `input_batch_size` (a whole number, the batch
#'   size of the input shape), `trainable` (`TRUE` or `FALSE`) and `layers`
#'   (a list of layers to add). Anything else is an error.
#' @returns A model: a function of class `depthwise_model`.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 10, 12)) |>
#'   layer_depthwise_conv_2d(kernel_size = 3, activation = "relu") |>
#'   layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2)
#' model
#' y <- model(random_uniform(c(4, 10, 10, 12)))
#' shape(y)
keras_model_sequential <- function(input_shape = NULL, name = NULL, ...) {
  dots <- list(...)
  nms <- names(dots) %||% rep("", length(dots))
  known <- c("input_batch_size", "trainable", "layers")
  unknown <- ifelse(nzchar(nms), nms, "(unnamed)")[!nms %in% known]
  if (length(unknown)) abort_unknown_names(unknown, known, "`...`")
  batch <- NA_integer_
  if (!is.null(dots$input_batch_size)) batch <- check_count(dots$input_batch_size, arg = "input_batch_size")
  if (!is.null(input_shape)) {
    dims <- as_dims(input_shape)
    if (length(dims) != 3L || anyNA(dims) || any(dims < 1L)) {
      abort_depthwise(
        c("`input_shape` must give the 3 positive sizes of one sample, without the batch dimension",
          x = sprintf("You supplied %s.", format_value(input_shape)),
          i = "For example `input_shape = c(28, 28, 3)` for channels_last."),
        "shape"
      )
    }
    input_shape <- new_shape(c(batch, dims))
  }
  state <- new.env(parent = emptyenv())
  state$name <- if (is.null(name)) auto_layer_name("sequential") else check_string(name)
  state$trainable <- if (is.null(dots$trainable)) TRUE else check_flag(dots$trainable, arg = "trainable")
  state$input_shape <- input_shape
  state$layers <- list()
  model <- new_model(state)
  layers <- dots$layers
  if (!is.null(layers)) {
    if (inherits(layers, "depthwise_layer")) layers <- list(layers)
    if (!is.list(layers)) {
      abort_depthwise(c("`layers` must be a list of layers", x = sprintf("You supplied %s.", format_value(layers))), "type")
    }
    for (layer in layers) model_add(model, layer, arg = "layers")
  }
  model
}

new_model <- function(state) {
  holder <- new.env(parent = asNamespace("depthwise"))
  holder$.state <- state
  fn <- function(inputs, ...) model_call(model_state(sys.function()), inputs, ...)
  environment(fn) <- holder
  class(fn) <- c("depthwise_sequential", "depthwise_model", "function")
  fn
}

model_state <- function(model) environment(unclass(model))$.state

# Shape of the model's output so far: its input shape run through the
# layers, or NULL if unknown.
model_output_shape <- function(state) {
  dims <- state$input_shape
  if (is.null(dims)) return(NULL)
  for (layer in state$layers) dims <- compute_output_shape(layer, dims)
  dims
}

# Appends `layer` to `model` in place; builds and checks it when the input
# shape is known.
model_add <- function(model, layer, arg = "layer", call = rlang::caller_env()) {
  if (!inherits(layer, "depthwise_layer")) {
    abort_depthwise(
      c(sprintf("`%s` must be a layer: only layers can be added to a sequential model", arg),
        x = sprintf("You supplied %s.", format_value(layer))),
      "type", call = call
    )
  }
  state <- model_state(model)
  dims <- model_output_shape(state)
  if (!is.null(dims)) {
    added <- layer_state(layer)
    if (added$built) check_input_channels(added, dims, call = call) else build_layer(added, dims, call = call)
    output_geometry(added$config, dims, call = call)
  }
  state$layers <- c(state$layers, list(layer))
  model
}

model_call <- function(state, inputs, ..., call = rlang::caller_env()) {
  check_call_dots(list(...), call = call)
  if (!length(state$layers)) {
    abort_depthwise(
      c(sprintf("Sequential model \"%s\" has no layers", state$name),
        i = "Add one with `model |> layer_depthwise_conv_2d(...)`."),
      "state", call = call
    )
  }
  x <- inputs
  for (layer in state$layers) x <- layer_call(layer_state(layer), x, arg = "inputs", call = call)
  if (is.null(state$input_shape)) {
    state$input_shape <- new_shape(c(NA_integer_, dim(inputs)[-1]))
  }
  x
}

#' Run a model on data in batches
#'
#' Calls the model on `x` in slices of `batch_size` samples and binds the
#' outputs along the first dimension. Shows a progress bar on an
#' interactive console when there is more than one batch (`verbose =
#' "auto"`), nothing in scripts unless asked.
#'
#' @param object A model made by [keras_model_sequential()].
#' @param x A 4D numeric array.
#' @param batch_size Samples per batch.
#' @param verbose `"auto"`, `0` (silent), `1` (progress bar) or `2` (one line
#'   when done).
#' @param ... Unused; an error if given.
#' @returns The output array.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(8, 8, 3)) |>
#'   layer_depthwise_conv_2d(kernel_size = 3)
#' y <- predict(model, random_uniform(c(10, 8, 8, 3)), batch_size = 4)
#' shape(y)
predict.depthwise_model <- function(object, x, batch_size = 32, verbose = "auto", ...) {
  if (...length()) {
    abort_depthwise(c("`predict()` takes `x`, `batch_size` and `verbose` only",
                      x = sprintf("You supplied %d more argument(s).", ...length())), "value")
  }
  batch_size <- check_count(batch_size)
  verbose <- check_verbose(verbose)
  x <- as_double_array(x)
  n <- dim(x)[1]
  if (length(dim(x)) != 4L || n <= batch_size) return(object(x))
  state <- model_state(object)
  starts <- seq(1L, n, by = batch_size)
  progress <- if (verbose == 1L) utils::txtProgressBar(min = 0, max = length(starts), style = 3)
  on.exit(if (!is.null(progress)) close(progress), add = TRUE)
  started <- Sys.time()
  out <- NULL
  for (k in seq_along(starts)) {
    idx <- starts[k]:min(n, starts[k] + batch_size - 1L)
    y <- object(x[idx, , , , drop = FALSE])
    if (is.null(out)) out <- array(0, c(n, dim(y)[-1]))
    out[idx, , , ] <- y
    if (!is.null(progress)) utils::setTxtProgressBar(progress, k)
  }
  if (verbose == 2L) {
    cat(sprintf("%d/%d batches, %.2fs\n", length(starts), length(starts),
                as.numeric(difftime(Sys.time(), started, units = "secs"))))
  }
  out
}

check_verbose <- function(verbose, call = rlang::caller_env()) {
  if (identical(verbose, "auto")) return(if (interactive()) 1L else 0L)
  if (is.numeric(verbose) && length(verbose) == 1L && verbose %in% 0:2) return(as.integer(verbose))
  abort_depthwise(
    c('`verbose` must be "auto", 0, 1 or 2', x = sprintf("You supplied %s.", format_value(verbose))),
    "value", call = call
  )
}

#' Get a layer of a model
#'
#' @param object A model made by [keras_model_sequential()].
#' @param name The layer's name.
#' @param index The layer's position, counting from 1.
#' @returns The layer (changes to it change the model's layer).
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(8, 8, 3)) |>
#'   layer_depthwise_conv_2d(kernel_size = 3, name = "first")
#' get_layer(model, name = "first")
#' get_layer(model, index = 1)
get_layer <- function(object, name = NULL, index = NULL) {
  check_model(object)
  layers <- model_state(object)$layers
  if (is.null(name) == is.null(index)) {
    abort_depthwise("Give exactly one of `name` and `index`", "incompatible")
  }
  if (!is.null(index)) {
    index <- check_count(index)
    if (index > length(layers)) {
      abort_depthwise(
        c(sprintf("`index` must be at most %d, the number of layers", length(layers)),
          x = sprintf("You supplied %d.", index)),
        "value"
      )
    }
    return(layers[[index]])
  }
  name <- check_string(name)
  names <- vapply(layers, function(l) l$name, "")
  hit <- match(name, names)
  if (is.na(hit)) {
    abort_depthwise(
      c(sprintf("No layer named \"%s\" in model \"%s\"", name, model_state(object)$name),
        i = if (length(names)) paste("Layers:", paste0('"', names, '"', collapse = ", ")) else "The model has no layers."),
      "value"
    )
  }
  layers[[hit]]
}

check_model <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!inherits(x, "depthwise_model")) {
    abort_depthwise(
      c(sprintf("`%s` must be a model made by keras_model_sequential()", arg),
        x = sprintf("You supplied %s.", format_value(x))),
      "type", call = call
    )
  }
  invisible(x)
}

model_fields <- c("name", "layers", "input_shape", "output_shape", "weights", "losses",
                  "built", "trainable", "type")

#' @export
`$.depthwise_model` <- function(x, name) {
  state <- model_state(x)
  switch(name,
    name = state$name,
    layers = state$layers,
    input_shape = state$input_shape,
    output_shape = model_output_shape(state),
    weights = unlist(lapply(state$layers, function(l) l$weights), recursive = FALSE) %||% list(),
    losses = unlist(lapply(state$layers, function(l) l$losses), recursive = FALSE) %||% list(),
    built = length(state$layers) > 0L && all(vapply(state$layers, function(l) l$built, TRUE)),
    trainable = state$trainable,
    type = "Sequential",
    NULL
  )
}

#' @export
`[[.depthwise_model` <- function(x, i) `$.depthwise_model`(x, i)

#' @export
.DollarNames.depthwise_model <- function(x, pattern = "") grep(pattern, model_fields, value = TRUE)

#' @export
build.depthwise_model <- function(object, input_shape) {
  dims <- check_input_shape(input_shape)
  state <- model_state(object)
  state$input_shape <- new_shape(dims)
  for (layer in state$layers) {
    build(layer, dims)
    dims <- compute_output_shape(layer, dims)
  }
  invisible(object)
}

#' @export
compute_output_shape.depthwise_model <- function(object, input_shape) {
  dims <- check_input_shape(input_shape)
  for (layer in model_state(object)$layers) dims <- compute_output_shape(layer, dims)
  new_shape(dims)
}

#' @export
get_weights.depthwise_model <- function(object) {
  unlist(lapply(model_state(object)$layers, get_weights), recursive = FALSE) %||% list()
}

#' @export
set_weights.depthwise_model <- function(object, weights, constrain = FALSE) {
  constrain <- check_flag(constrain)
  layers <- model_state(object)$layers
  for (layer in layers) check_built(layer_state(layer), "set")
  counts <- vapply(layers, function(l) length(layer_weights(layer_state(l))), 1L)
  if (!is.list(weights) || is.data.frame(weights) || length(weights) != sum(counts)) {
    abort_depthwise(
      c(sprintf("`weights` must be a list of %d arrays, the weights of each layer in order", sum(counts)),
        x = sprintf("You supplied %s.", format_value(weights))),
      if (is.list(weights)) "shape" else "type"
    )
  }
  ends <- cumsum(counts)
  # Check every layer's slice before changing any, so a bad list changes nothing.
  checked <- lapply(seq_along(layers), function(k) {
    idx <- (ends[k] - counts[k] + 1L):ends[k]
    new <- checked_layer_weights(layer_state(layers[[k]]), weights[idx],
                                 arg = sprintf("weights[%d:%d]", idx[1], idx[length(idx)]))
    if (constrain) new <- constrained_weights(layer_state(layers[[k]]), new)
    new
  })
  for (k in seq_along(layers)) {
    state <- layer_state(layers[[k]])
    state$kernel <- checked[[k]]$kernel
    state$bias <- checked[[k]]$bias
  }
  invisible(object)
}

#' @export
count_params.depthwise_model <- function(object) {
  state <- model_state(object)
  unbuilt <- !vapply(state$layers, function(l) l$built, TRUE)
  if (!length(state$layers) || any(unbuilt)) {
    abort_depthwise(
      c(sprintf("You tried to call `count_params()` on model \"%s\", but it isn't built", state$name),
        i = "Give `input_shape` to keras_model_sequential(), call the model on an array, or use `build()`."),
      "state"
    )
  }
  sum(vapply(state$layers, count_params, 1))
}

#' @export
apply_constraints.depthwise_model <- function(object) {
  for (layer in model_state(object)$layers) apply_constraints(layer)
  invisible(object)
}
