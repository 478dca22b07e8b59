# The layer object. A layer is an R function (so `layer(x)` works, as a
# keras3 layer is callable) whose enclosing environment holds `.state`, an
# environment with the config and weights. Reference semantics let a layer
# build itself on its first call; plain environments (no external pointers)
# let saveRDS()/readRDS() round-trip a layer.

new_layer <- function(state) {
  holder <- new.env(parent = asNamespace("depthwise"))
  holder$.state <- state
  fn <- function(inputs, ...) layer_call(layer_state(sys.function()), inputs, ...)
  environment(fn) <- holder
  class(fn) <- c("depthwise_layer", "function")
  fn
}

layer_state <- function(layer) environment(unclass(layer))$.state

channel_axis <- function(cfg) if (cfg$data_format == "channels_first") 2L else 4L

# Calls the layer on `inputs`: validates the array, builds on the first call,
# runs the C++ forward pass and any R-function activation.
layer_call <- function(state, inputs, ..., arg = "inputs", call = rlang::caller_env()) {
  if (...length()) check_call_dots(list(...), call = call)
  x <- as_double_array(inputs, arg = arg, call = call)
  cfg <- state$config
  dims <- dim(x)
  if (length(dims) != 4L) {
    abort_depthwise(
      c(sprintf("Input of layer \"%s\" is incompatible with the layer: expected a 4D array, found %dD", cfg$name, length(dims)),
        x = sprintf("Full shape received: %s.", format_dims(dims)),
        i = input_layout_hint(cfg)),
      "shape", call = call
    )
  }
  if (!state$built) {
    build_layer(state, dims, call = call)
  } else {
    check_input_channels(state, dims, call = call)
  }
  # Calls on inputs of the shape seen last reuse its geometry and shapes
  # (they cost more than the convolution itself on small inputs).
  memo <- state$call_memo
  if (is.null(memo) || !identical(memo$dims, dims) || !identical(memo$config, cfg)) {
    geometry <- output_geometry(cfg, dims, call = call)
    memo <- list(dims = dims, config = cfg, work = prod(geometry$dims) * prod(cfg$kernel_size),
                 input_shape = new_shape(dims), output_dims = geometry$dims,
                 output_shape = new_shape(geometry$dims))
    state$call_memo <- memo
  }
  y <- run_cpp(dw_forward(
    x, state$kernel, state$bias, cfg$strides, cfg$dilation_rate, padding_code(cfg$padding),
    cfg$data_format == "channels_first", state$activation$code, threads_for_work(memo$work), FALSE
  ), call = call)
  if (!is.null(state$activation$fn)) y <- apply_r_activation(state$activation$fn, y, call = call)
  state$input_shape <- memo$input_shape
  state$output_shape <- if (identical(dim(y), memo$output_dims)) memo$output_shape else new_shape(dim(y))
  if (isTRUE(state$keep_output)) state$last_output <- y
  y
}

check_call_dots <- function(dots, call) {
  nms <- names(dots) %||% rep("", length(dots))
  bad <- setdiff(nms, "training")
  if (length(bad)) {
    abort_depthwise(
      c("A layer is called with one array (and optionally `training`)",
        x = sprintf("Unexpected argument%s: %s.", if (length(bad) > 1) "s" else "",
                    paste(ifelse(nzchar(bad), paste0("`", bad, "`"), "(unnamed)"), collapse = ", "))),
      "value", call = call
    )
  }
}

input_layout_hint <- function(cfg) {
  if (cfg$data_format == "channels_first") {
    "This layer uses channels_first: inputs are (batch, channels, rows, cols)."
  } else {
    "This layer uses channels_last: inputs are (batch, rows, cols, channels)."
  }
}

padding_code <- function(padding) if (padding == "same") 1L else 0L

# Runs a C++ entry point, turning any error it raises into a classed one.
run_cpp <- function(expr, call = rlang::caller_env()) {
  tryCatch(expr, error = function(e) {
    msg <- conditionMessage(e)
    too_big <- grepl("cannot allocate|exceeds R's|size overflow|maximum vector length", msg)
    abort_depthwise(
      c(if (too_big) "The result is too large" else "The convolution could not be computed", x = msg),
      if (too_big) "size" else "internal", call = call
    )
  })
}

# Output dims and paddings for input dims `dims` (batch may be NA), with the
# Keras error when the output would be empty.
output_geometry <- function(cfg, dims, call = rlang::caller_env()) {
  # Unknown sizes (NA) get a stand-in value for the arithmetic and come back NA.
  known <- dims
  known[1][is.na(known[1])] <- 1L
  known[is.na(known)] <- 1e6
  g <- run_cpp(dw_output_geometry(
    as.numeric(known), cfg$kernel_size, cfg$strides, cfg$dilation_rate,
    padding_code(cfg$padding), cfg$depth_multiplier, cfg$data_format == "channels_first"
  ), call = call)
  out <- g[1:4]
  spatial <- if (cfg$data_format == "channels_first") 3:4 else 2:3
  if (any(out[spatial] <= 0 & !is.na(dims[spatial]))) {
    abort_depthwise(
      c("The output would have no rows or columns: the input is smaller than the dilated kernel",
        x = sprintf("Input shape %s, kernel_size %s, dilation_rate %s, strides %s, padding \"%s\".",
                    format_dims(dims), format_dims(cfg$kernel_size), format_dims(cfg$dilation_rate),
                    format_dims(cfg$strides), cfg$padding),
        i = "Use a larger input, a smaller kernel or dilation, or padding = \"same\"."),
      "shape", call = call
    )
  }
  if (any(out > .Machine$integer.max) || prod(out) > 2^52) {
    abort_depthwise(
      c("The output would be larger than R can hold",
        x = sprintf("Output shape %s.", format_dims(out))),
      "size", call = call
    )
  }
  if (is.na(dims[1])) out[1] <- NA
  channels_in <- if (cfg$data_format == "channels_first") 2L else 4L
  out[c(spatial, channels_in)[is.na(dims[c(spatial, channels_in)])]] <- NA
  list(dims = as.integer(out), padding = g[5:8])
}

check_input_channels <- function(state, dims, call) {
  cfg <- state$config
  axis <- channel_axis(cfg)
  expected <- dim(state$kernel)[3]
  if (!identical(as.integer(dims[axis]), as.integer(expected))) {
    abort_depthwise(
      c(sprintf("Input of layer \"%s\" is incompatible with the layer: expected %d channels (axis %d), found %s",
                cfg$name, expected, axis, dims[axis]),
        x = sprintf("Full shape received: %s; the layer was built for %s.",
                    format_dims(dims), format_dims(state$build_input_shape)),
        i = input_layout_hint(cfg)),
      "shape", call = call
    )
  }
}

# Creates the weights for an input of shape `dims` (batch may be NA).
build_layer <- function(state, dims, call = rlang::caller_env()) {
  cfg <- state$config
  channels <- dims[channel_axis(cfg)]
  if (is.na(channels) || channels < 1L) {
    abort_depthwise(
      c(sprintf("Layer \"%s\" needs at least one input channel", cfg$name),
        x = sprintf("Input shape %s has %s channels (axis %d).", format_dims(dims), channels, channel_axis(cfg)),
        i = input_layout_hint(cfg)),
      "shape", call = call
    )
  }
  output_geometry(cfg, dims, call = call)
  kernel_dims <- c(cfg$kernel_size, channels, cfg$depth_multiplier)
  state$kernel <- initializer_draw(cfg$depthwise_initializer, kernel_dims)
  state$bias <- if (cfg$use_bias) initializer_draw(cfg$bias_initializer, channels * cfg$depth_multiplier)
  state$build_input_shape <- new_shape(dims)
  state$built <- TRUE
  invisible(state)
}

#' Build a layer's weights without data
#'
#' Creates the kernel and bias for inputs of `input_shape`, as the first call
#' on an array would.
#'
#' @param layer A layer made by [layer_depthwise_conv_2d()].
#' @param input_shape The full input shape, batch included (the batch size may
#'   be `NA`).
#' @returns The layer, invisibly (it is modified in place).
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3)
#' build(layer, shape(NA, 28, 28, 8))
#' dim(get_weights(layer)[[1]])
build <- function(layer, input_shape) {
  check_layer(layer)
  dims <- as_dims(input_shape)
  if (length(dims) != 4L) {
    abort_depthwise(
      c("`input_shape` must have 4 sizes, batch included (the batch may be NA)",
        x = sprintf("You supplied %s.", format(new_shape(dims)))),
      "shape"
    )
  }
  state <- layer_state(layer)
  if (state$built) check_input_channels(state, dims, call = rlang::current_env())
  else build_layer(state, dims)
  invisible(layer)
}

check_layer <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!inherits(x, "depthwise_layer")) {
    abort_depthwise(
      c(sprintf("`%s` must be a layer made by layer_depthwise_conv_2d()", arg),
        x = sprintf("You supplied %s.", format_value(x))),
      "type", call = call
    )
  }
  invisible(x)
}

check_built <- function(state, what, call = rlang::caller_env()) {
  if (!state$built) {
    abort_depthwise(
      c(sprintf("Layer \"%s\" isn't built yet, so it has no weights to %s", state$config$name, what),
        i = "Call it on an array, or use `build(layer, input_shape)`, first."),
      "state", call = call
    )
  }
}

layer_fields <- c("name", "trainable", "dtype", "built", "kernel", "bias", "weights",
                  "input_shape", "output_shape", "last_output", "type", "config")

#' Keep a layer's last output for inspection
#'
#' With `keep = TRUE`, the layer stores the output of each call, replacing the
#' previous one, so that `layer$last_output` (and the plotting functions) can
#' show what it produced, as TensorSpace does. This costs memory: one more
#' copy of the largest output the layer has produced (8 bytes per element).
#' `keep = FALSE` drops it. Off by default.
#'
#' @param layer A layer made by [layer_depthwise_conv_2d()].
#' @param keep `TRUE` or `FALSE`.
#' @returns The layer, invisibly (modified in place).
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3)
#' keep_last_output(layer)
#' y <- layer(random_uniform(c(1, 6, 6, 2)))
#' identical(layer$last_output, y)
keep_last_output <- function(layer, keep = TRUE) {
  check_layer(layer)
  keep <- check_flag(keep)
  state <- layer_state(layer)
  state$keep_output <- keep
  if (!keep) state$last_output <- NULL
  invisible(layer)
}

#' @export
`$.depthwise_layer` <- function(x, name) {
  state <- layer_state(x)
  switch(name,
    built = state$built,
    kernel = state$kernel,
    bias = state$bias,
    weights = if (state$built) layer_weights(state) else list(),
    input_shape = state$input_shape %||% state$build_input_shape,
    last_output = state$last_output,
    output_shape = state$output_shape,
    type = "DepthwiseConv2D",
    config = state$config,
    state$config[[name]]
  )
}

#' @export
`[[.depthwise_layer` <- function(x, i) `$.depthwise_layer`(x, i)

#' @export
.DollarNames.depthwise_layer <- function(x, pattern = "") {
  grep(pattern, unique(c(layer_fields, names(layer_state(x)$config))), value = TRUE)
}

#' @export
print.depthwise_layer <- function(x, ...) {
  state <- layer_state(x)
  cfg <- state$config
  act <- if (is.function(cfg$activation)) "<function>" else cfg$activation
  built <- if (state$built) {
    sprintf("built for %s, %s params", format_dims(state$build_input_shape), format(count_layer_params(state), big.mark = ","))
  } else {
    "not built"
  }
  cat(sprintf("<DepthwiseConv2D> %s\n", cfg$name))
  cat(sprintf("  kernel %dx%d, strides %s, dilation %s, padding \"%s\", depth_multiplier %d\n",
              cfg$kernel_size[1], cfg$kernel_size[2], format_dims(cfg$strides),
              format_dims(cfg$dilation_rate), cfg$padding, cfg$depth_multiplier))
  cat(sprintf("  %s, activation \"%s\", %s; %s\n", cfg$data_format, act,
              if (cfg$use_bias) "bias" else "no bias", built))
  invisible(x)
}

count_layer_params <- function(state) {
  length(state$kernel) + length(state$bias)
}
