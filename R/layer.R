# The layer object. A layer is an R function (so `layer(x)` works, as a
# keras3 layer is callable) whose enclosing environment holds `.state`, an
# environment with the config and weights. Reference semantics let a layer
# build itself on its first call; plain environments (no external pointers)
# let saveRDS()/readRDS() round-trip a layer.

new_layer <- function(state) {
  holder <- new.env(parent = asNamespace("depthwise"))
  holder$.state <- state
  # The body finds `.state` in `holder`, its environment (cheaper than
  # looking the function up with sys.function() on every call). Set after
  # the fact so that code analysis does not take `.state` for a global.
  fn <- function(inputs, ...) NULL
  body(fn) <- quote(layer_call(.state, inputs, ...))
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
  # A double array needs no conversion and passes every as_double_array()
  # check, so it skips the call (a microsecond on the seed shape's ~12).
  x <- if (!missing(inputs) && is.double(inputs) && !is.null(dim(inputs))) inputs else
    as_double_array(inputs, arg = arg, call = call)
  # Calls on inputs of the shape of the last call skip the shape checks
  # (that shape passed them, and a built layer's channel count never
  # changes) and reuse its geometry: all that costs more than the
  # convolution on small inputs. The memo is also what `layer$input_shape`
  # and `layer$output_shape` report, so it is stored once the call has
  # succeeded. (The configuration it copies never changes but for
  # `trainable`, which the forward pass does not read.)
  memo <- state$call_memo
  new_shape_seen <- is.null(memo) || !identical(memo$dims, dim(x))
  if (new_shape_seen) memo <- new_call_memo(state, dim(x), call = call)
  threads <- if (memo$single_thread) 1L else get_depthwise_threads()
  # The registered routine is called without its RcppExports wrapper, whose
  # ten promises cost about a microsecond. C++ failures come back as a
  # classed string, so small calls skip the error handler (~2 us); large
  # outputs keep it, since an R error inside (their allocation failing)
  # would not be classed otherwise.
  y <- if (memo$guarded) {
    run_cpp(.Call(`_depthwise_dw_forward`, x, state$kernel, state$bias, memo$strides, memo$dilation,
                  memo$padding_code, memo$channels_first, memo$activation_code, threads, FALSE), call = call)
  } else {
    .Call(`_depthwise_dw_forward`, x, state$kernel, state$bias, memo$strides, memo$dilation,
          memo$padding_code, memo$channels_first, memo$activation_code, threads, FALSE)
  }
  if (is.character(y)) abort_cpp_failure(y, call = call)
  if (!is.null(memo$activation_fn)) y <- apply_r_activation(memo$activation_fn, y, call = call)
  if (!is.null(memo$activity_regularizer) || !is.null(state$activity_loss)) {
    state$activity_loss <- activity_penalty(memo$activity_regularizer, y, call = call)
  }
  if (new_shape_seen) state$call_memo <- memo
  if (isTRUE(state$keep_output)) state$last_output <- y
  y
}

# Outputs from this many doubles (1 MiB) on are allocated under an R error
# handler (see layer_call()).
guarded_output_length <- 2^17

# Checks an input shape (builds the layer on its first call) and works out
# what calls on that shape share.
new_call_memo <- function(state, dims, call) {
  cfg <- state$config
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
  geometry <- output_geometry(cfg, dims, call = call)
  check_allocation(prod(as.numeric(geometry$dims)), sprintf("The output %s of layer \"%s\"",
                   format_dims(geometry$dims), cfg$name), size_hint, call = call)
  work <- prod(as.numeric(geometry$dims)) * prod(cfg$kernel_size)
  list(dims = dims, single_thread = work < parallel_work_threshold,
       input_shape = new_shape(dims), output_shape = new_shape(geometry$dims),
       strides = cfg$strides, dilation = cfg$dilation_rate, padding_code = padding_code(cfg$padding),
       channels_first = cfg$data_format == "channels_first",
       activation_code = state$activation$code, activation_fn = state$activation$fn,
       activity_regularizer = cfg$activity_regularizer,
       guarded = prod(as.numeric(geometry$dims)) >= guarded_output_length)
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

# Keras divides the activity penalty by the batch size; an empty batch has none.
activity_penalty <- function(regularizer, y, call) {
  if (is.null(regularizer) || dim(y)[1] == 0L) return(NULL)
  penalty_of(regularizer, y, "activity", call = call) / dim(y)[1]
}

# Keras 3 order: the activity penalty of the last call, then the weight
# penalties (kernel, bias) of a trainable layer.
layer_losses <- function(state, call = rlang::caller_env()) {
  cfg <- state$config
  losses <- list()
  if (!is.null(state$activity_loss)) losses <- c(losses, state$activity_loss)
  if (state$built && isTRUE(cfg$trainable)) {
    if (!is.null(cfg$depthwise_regularizer)) {
      losses <- c(losses, penalty_of(cfg$depthwise_regularizer, state$kernel, "depthwise", call = call))
    }
    if (!is.null(cfg$bias_regularizer) && !is.null(state$bias)) {
      losses <- c(losses, penalty_of(cfg$bias_regularizer, state$bias, "bias", call = call))
    }
  }
  losses
}

# Runs a C++ entry point, turning any error it raises into a classed one.
# (layer_call() skips it on small calls: see there.)
run_cpp <- function(expr, call = rlang::caller_env()) {
  # A classed error from evaluating the arguments (such as a bad thread
  # setting) keeps its class; anything else is a C++ (internal) error. A
  # calling handler rather than tryCatch(): it raises the classed error
  # from where the first was signalled, at a third of the cost per call
  # (~2 us against ~6).
  value <- withCallingHandlers(expr, error = function(e) {
    if (!inherits(e, "depthwise_error")) abort_cpp_failure(conditionMessage(e), call = call)
  })
  # dw_forward() returns its C++ errors instead of raising them.
  if (inherits(value, "depthwise_cpp_failure")) abort_cpp_failure(value, call = call)
  value
}

# The classed error for a message from the C++ side.
abort_cpp_failure <- function(msg, call) {
  msg <- as.character(unclass(msg))
  too_big <- grepl("cannot allocate|exceeds R's|size overflow|maximum vector length", msg)
  abort_depthwise(
    c(if (too_big) "The result is too large" else "The convolution could not be computed", x = msg),
    if (too_big) "size" else "internal", call = call
  )
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
  check_allocation(prod(as.numeric(kernel_dims)), sprintf("The depthwise kernel %s of layer \"%s\"",
                   format_dims(kernel_dims), cfg$name), size_hint, call = call)
  state$kernel <- draw_initializer(cfg$depthwise_initializer, kernel_dims, "depthwise_initializer", call)
  state$bias <- if (cfg$use_bias) {
    draw_initializer(cfg$bias_initializer, channels * cfg$depth_multiplier, "bias_initializer", call)
  }
  state$build_input_shape <- new_shape(dims)
  state$built <- TRUE
  invisible(state)
}

#' Build weights without data
#'
#' Creates a layer's (or every layer of a model's) kernel and bias for inputs
#' of `input_shape`, as the first call on an array would.
#'
#' @param object A layer made by [layer_depthwise_conv_2d()] or a model made
#'   by [keras_model_sequential()].
#' @param input_shape The full input shape, batch included (the batch size may
#'   be `NA`).
#' @returns `object`, invisibly (it is modified in place).
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3)
#' build(layer, shape(NA, 28, 28, 8))
#' dim(get_weights(layer)[[1]])
build <- function(object, input_shape) {
  UseMethod("build")
}

#' @export
build.default <- function(object, input_shape) {
  check_layer_or_model(object)
}

#' @export
build.depthwise_layer <- function(object, input_shape) {
  dims <- check_input_shape(input_shape)
  state <- layer_state(object)
  if (state$built) check_input_channels(state, dims, call = rlang::current_env())
  else build_layer(state, dims)
  invisible(object)
}

check_input_shape <- function(input_shape, call = rlang::caller_env()) {
  dims <- as_dims(input_shape, arg = "input_shape", call = call)
  if (length(dims) != 4L) {
    abort_depthwise(
      c("`input_shape` must have 4 sizes, batch included (the batch may be NA)",
        x = sprintf("You supplied %s.", format(new_shape(dims)))),
      "shape", call = call
    )
  }
  dims
}

#' Output shape of a layer or model for an input shape
#'
#' Works out the output shape without computing anything, by the same
#' arithmetic as the forward pass (padding, strides and dilation included).
#' The layer need not be built.
#'
#' @inheritParams build
#' @param input_shape The full input shape, batch included; unknown sizes
#'   (such as the batch) may be `NA`.
#' @returns A [shape()].
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, strides = 2, padding = "same",
#'                                  depth_multiplier = 2)
#' compute_output_shape(layer, shape(NA, 28, 28, 3))
compute_output_shape <- function(object, input_shape) {
  UseMethod("compute_output_shape")
}

#' @export
compute_output_shape.default <- function(object, input_shape) {
  check_layer_or_model(object)
}

#' @export
compute_output_shape.depthwise_layer <- function(object, input_shape) {
  dims <- check_input_shape(input_shape)
  new_shape(output_geometry(layer_state(object)$config, dims)$dims)
}

check_layer_or_model <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  abort_depthwise(
    c(sprintf("`%s` must be a layer or a sequential model", arg),
      x = sprintf("You supplied %s.", format_value(x))),
    "type", call = call
  )
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

layer_fields <- c("name", "trainable", "dtype", "built", "kernel", "bias", "weights", "losses",
                  "input_shape", "output_shape", "last_output", "type", "config")

#' Keep a layer's last output for inspection
#'
#' With `keep = TRUE`, the layer stores the output of each call, replacing the
#' previous one, so that `layer$last_output` (and the plotting functions) can
#' show what it produced, as TensorSpace does (see [plot_feature_maps()] and
#' [plot.depthwise_layer()]). This costs memory: one more copy of the largest
#' output the layer has produced (8 bytes per element). `keep = FALSE` drops
#' it. Off by default.
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
    losses = layer_losses(state),
    input_shape = state$call_memo$input_shape %||% state$build_input_shape,
    last_output = state$last_output,
    output_shape = state$call_memo$output_shape,
    type = "DepthwiseConv2D",
    config = state$config,
    state$config[[name]]
  )
}

#' @export
`[[.depthwise_layer` <- function(x, i) {
  if (!is.character(i) || length(i) != 1L || is.na(i)) {
    abort_depthwise(c("`i` must be a single field name, as in `layer[[\"kernel\"]]`",
                      x = sprintf("You supplied %s.", format_value(i))), "type")
  }
  `$.depthwise_layer`(x, i)
}

# Only `trainable` can be changed on a layer, as in Keras (the rest is fixed
# at construction).
#' @export
`$<-.depthwise_layer` <- function(x, name, value) {
  if (!identical(name, "trainable")) {
    abort_depthwise(
      c(sprintf("`layer$%s` cannot be changed", name),
        i = "Only `layer$trainable` can be set; weights change with `set_weights()`."),
      "unsupported"
    )
  }
  state <- layer_state(x)
  state$config$trainable <- check_flag(value, arg = "trainable")
  x
}

#' @export
`[[<-.depthwise_layer` <- function(x, i, value) `$<-.depthwise_layer`(x, i, value)

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
