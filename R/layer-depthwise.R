#' 2D depthwise convolution layer
#'
#' Depthwise convolution filters each input channel with its own
#' `depth_multiplier` kernels and never mixes channels: output channel
#' `(c - 1) * depth_multiplier + m` is input channel `c` convolved with kernel
#' `[, , c, m]`, plus a bias, passed through the activation. This is the
#' Keras 3 `DepthwiseConv2D` layer, with the same arguments, defaults,
#' numbers and errors, computed in C++ on R's double arrays.
#'
#' @param object What to compose the layer with. Missing: the layer is
#'   returned. A numeric array: the layer is built on it and its output is
#'   returned (integer and logical arrays are converted to double). A
#'   sequential model ([keras_model_sequential()]): the layer is appended to
#'   the model, which is modified in place and returned.
#' @param kernel_size One or two positive whole numbers (vector or list): the
#'   height and width of the depthwise kernel.
#' @param strides One or two positive whole numbers: the step of the kernel
#'   over rows and columns. Cannot be combined with `dilation_rate` > 1.
#' @param padding `"valid"` (no padding) or `"same"` (zero padding so that the
#'   output has `ceiling(input / strides)` rows and columns; an odd total
#'   padding puts the extra row or column at the bottom or right, as
#'   TensorFlow does). Any case.
#' @param depth_multiplier Number of output channels per input channel.
#' @param data_format `"channels_last"` (inputs `(batch, height, width,
#'   channels)`) or `"channels_first"` (inputs `(batch, channels, height,
#'   width)`), any case. `NULL` means [config_image_data_format()].
#' @param dilation_rate One or two positive whole numbers: the spacing
#'   between kernel taps.
#' @param activation `NULL` (none), a Keras activation name (`"linear"`,
#'   `"relu"`, `"relu6"`, `"sigmoid"`, `"hard_sigmoid"`, `"tanh"`,
#'   `"softmax"`, `"log_softmax"`, `"elu"`, `"selu"`, `"softplus"`,
#'   `"softsign"`, `"silu"`, `"swish"`, `"gelu"`, `"exponential"`,
#'   `"leaky_relu"`, `"mish"`, `"hard_silu"`, `"hard_swish"`) or an R
#'   function applied to the output array. Named element-wise activations
#'   run inside the C++ kernel; softmax and log_softmax act over the last axis.
#' @param use_bias `TRUE` or `FALSE`: whether the layer has a bias.
#' @param depthwise_initializer,bias_initializer Initializer for the kernel and
#'   the bias: a Keras name (such as `"glorot_uniform"`), an object made by
#'   [initializer_glorot_uniform()] and friends, or a function
#'   `function(shape, dtype = NULL)` returning an array.
#' @param depthwise_regularizer,bias_regularizer,activity_regularizer `NULL`,
#'   a regularizer such as [regularizer_l2()], a Keras name (`"l1"`, `"l2"`,
#'   `"l1_l2"`), or an R function of one array returning one number. Weight
#'   penalties and, after a call, the activity penalty (divided by the batch
#'   size, as Keras does) are listed in `layer$losses`.
#' @param depthwise_constraint,bias_constraint `NULL`, a constraint such as
#'   [constraint_maxnorm()], a Keras name, or an R function of the weight array
#'   returning an array of the same size. Applied by [apply_constraints()] or
#'   `set_weights(..., constrain = TRUE)`.
#' @param ... Named layer options: `name` (a string), `trainable` (`TRUE` or
#'   `FALSE`), `dtype` (`NULL`, `"float32"` or `"float64"`; computation is
#'   always in double) and `input_shape` (the input shape without the batch
#'   dimension; builds the layer at once). Anything else is an error.
#'
#' @details
#' # Input shape
#' A 4D array: `(batch, rows, cols, channels)` for `channels_last`,
#' `(batch, channels, rows, cols)` for `channels_first`.
#'
#' # Output shape
#' A 4D array: `(batch, new_rows, new_cols, channels * depth_multiplier)` for
#' `channels_last`, `(batch, channels * depth_multiplier, new_rows, new_cols)`
#' for `channels_first`. With `"valid"` padding, `new_rows = floor((rows -
#' (kernel_rows - 1) * dilation_rows - 1) / stride_rows) + 1`; with `"same"`,
#' `new_rows = ceiling(rows / stride_rows)`; likewise for columns.
#'
#' @returns With `object` missing, a layer (class `depthwise_layer`): a
#'   function to call on arrays, which builds its weights on the first call
#'   and reuses them afterwards. Its fields are read with `$`: `name`,
#'   `kernel`, `bias`, `weights`, `built`, `input_shape`, `output_shape`,
#'   `losses`, `last_output` (see [keep_last_output()]), `type`, `config` and every
#'   entry of `config` (`layer$padding`, ...). With an array, the layer's
#'   output: a double array of the shape given under *Output shape*. With a
#'   sequential model ([keras_model_sequential()]), the model with the layer
#'   appended (it is also modified in place).
#' @seealso [get_weights()] and [set_weights()] for the weights,
#'   [plot_feature_maps()] and [plot_kernels()] to see what a layer does, and
#'   `vignette("depthwise")` for a tour.
#' @export
#' @examples
#' x <- random_uniform(c(4, 10, 10, 12))
#' y <- x |> layer_depthwise_conv_2d(kernel_size = 3, activation = "relu")
#' shape(y)
#'
#' layer <- layer_depthwise_conv_2d(kernel_size = c(3, 5), padding = "same",
#'                                  depth_multiplier = 2)
#' shape(layer(x))
#' str(get_weights(layer))
layer_depthwise_conv_2d <- function(object, kernel_size, strides = list(1L, 1L), padding = "valid",
                                    depth_multiplier = 1L, data_format = NULL,
                                    dilation_rate = list(1L, 1L), activation = NULL,
                                    use_bias = TRUE, depthwise_initializer = "glorot_uniform",
                                    bias_initializer = "zeros", depthwise_regularizer = NULL,
                                    bias_regularizer = NULL, activity_regularizer = NULL,
                                    depthwise_constraint = NULL, bias_constraint = NULL, ...) {
  # Evaluate `object` before creating this layer, so that in a pipe chain
  # layers are created (and auto-named) in pipe order.
  if (!missing(object)) force(object)
  if (missing(kernel_size)) {
    abort_depthwise(
      c("`kernel_size` is required", i = "For example `layer_depthwise_conv_2d(kernel_size = 3)`."),
      "value"
    )
  }
  layer <- new_depthwise_conv_2d(
    kernel_size = kernel_size, strides = strides, padding = padding,
    depth_multiplier = depth_multiplier, data_format = data_format,
    dilation_rate = dilation_rate, activation = activation, use_bias = use_bias,
    depthwise_initializer = depthwise_initializer, bias_initializer = bias_initializer,
    depthwise_regularizer = depthwise_regularizer, bias_regularizer = bias_regularizer,
    activity_regularizer = activity_regularizer, depthwise_constraint = depthwise_constraint,
    bias_constraint = bias_constraint, ...
  )
  if (missing(object)) return(layer)
  compose_layer(object, layer)
}

# What `layer_*(object, ...)` does with its `object`.
compose_layer <- function(object, layer, call = rlang::caller_env()) {
  if (inherits(object, "depthwise_model")) return(model_add(object, layer, call = call))
  if (inherits(object, "depthwise_layer")) {
    abort_depthwise(
      c("`object` must be missing, an array or a sequential model, not a layer",
        i = "Call the first layer on an array instead: `layer(x)`."),
      "type", call = call
    )
  }
  layer_call(layer_state(layer), object, arg = "object", call = call)
}

new_depthwise_conv_2d <- function(kernel_size, strides, padding, depth_multiplier, data_format,
                                  dilation_rate, activation, use_bias, depthwise_initializer,
                                  bias_initializer, depthwise_regularizer, bias_regularizer,
                                  activity_regularizer, depthwise_constraint, bias_constraint,
                                  ..., call = rlang::caller_env()) {
  kernel_size <- check_int_pair(kernel_size, call = call)
  strides <- check_int_pair(strides, call = call)
  dilation_rate <- check_int_pair(dilation_rate, call = call)
  if (any(strides > 1L) && any(dilation_rate > 1L)) {
    abort_depthwise(
      c("`strides` > 1 cannot be combined with `dilation_rate` > 1",
        x = sprintf("You supplied strides = %s and dilation_rate = %s.",
                    format_dims(strides), format_dims(dilation_rate)),
        i = "Keras raises the same error: use either a stride or a dilation."),
      "incompatible", call = call
    )
  }
  padding <- check_choice(padding, c("valid", "same"), call = call)
  depth_multiplier <- check_count(depth_multiplier, call = call)
  data_format <- if (is.null(data_format)) config_image_data_format() else
    check_choice(data_format, c("channels_last", "channels_first"), call = call)
  resolved_activation <- resolve_activation(activation, call = call)
  use_bias <- check_flag(use_bias, call = call)
  depthwise_initializer <- resolve_initializer(depthwise_initializer, call = call)
  bias_initializer <- resolve_initializer(bias_initializer, call = call)
  depthwise_regularizer <- resolve_regularizer(depthwise_regularizer, call = call)
  bias_regularizer <- resolve_regularizer(bias_regularizer, call = call)
  activity_regularizer <- resolve_regularizer(activity_regularizer, call = call)
  depthwise_constraint <- resolve_constraint(depthwise_constraint, call = call)
  bias_constraint <- resolve_constraint(bias_constraint, call = call)
  options <- check_layer_options(list(...), call = call)

  state <- new.env(parent = emptyenv())
  state$config <- list(
    name = options$name %||% auto_layer_name("depthwise_conv2d"),
    trainable = options$trainable,
    dtype = options$dtype,
    kernel_size = kernel_size,
    strides = strides,
    padding = padding,
    depth_multiplier = depth_multiplier,
    data_format = data_format,
    dilation_rate = dilation_rate,
    activation = if (is.function(activation)) activation else resolved_activation$name,
    use_bias = use_bias,
    depthwise_initializer = depthwise_initializer,
    bias_initializer = bias_initializer,
    depthwise_regularizer = depthwise_regularizer,
    bias_regularizer = bias_regularizer,
    activity_regularizer = activity_regularizer,
    depthwise_constraint = depthwise_constraint,
    bias_constraint = bias_constraint
  )
  state$activation <- resolved_activation
  state$built <- FALSE
  state$kernel <- NULL
  state$bias <- NULL
  state$build_input_shape <- NULL
  layer <- new_layer(state)
  if (!is.null(options$input_shape)) {
    build_layer(state, c(NA_integer_, options$input_shape), call = call)
  }
  layer
}

layer_option_names <- c("name", "trainable", "dtype", "input_shape")

check_layer_options <- function(dots, call = rlang::caller_env()) {
  nms <- names(dots) %||% rep("", length(dots))
  if (any(!nzchar(nms))) {
    abort_depthwise(
      c("Arguments in `...` must be named",
        x = sprintf("You supplied %d unnamed argument(s): %s.", sum(!nzchar(nms)),
                    paste(vapply(dots[!nzchar(nms)], format_value, ""), collapse = ", ")),
        i = paste("Recognised names:", paste0("`", layer_option_names, "`", collapse = ", "))),
      "value", call = call
    )
  }
  unknown <- setdiff(nms, layer_option_names)
  if (length(unknown)) abort_unknown_names(unknown, layer_option_names, "`...`", call = call)
  if (anyDuplicated(nms)) {
    abort_depthwise(sprintf("Argument `%s` in `...` is given more than once", nms[anyDuplicated(nms)]),
                    "value", call = call)
  }
  name <- if (!is.null(dots$name)) check_string(dots$name, arg = "name", call = call)
  trainable <- if (is.null(dots$trainable)) TRUE else check_flag(dots$trainable, arg = "trainable", call = call)
  dtype <- check_dtype(dots$dtype, arg = "dtype", call = call) %||% "float32"
  input_shape <- NULL
  if (!is.null(dots$input_shape)) {
    input_shape <- as_dims(dots$input_shape, arg = "input_shape", call = call)
    if (length(input_shape) != 3L || anyNA(input_shape)) {
      abort_depthwise(
        c("`input_shape` must give the 3 sizes of one sample, without the batch dimension",
          x = sprintf("You supplied %s.", format_value(dots$input_shape)),
          i = "For example `input_shape = c(28, 28, 3)` for channels_last."),
        "shape", call = call
      )
    }
  }
  list(name = name, trainable = trainable, dtype = dtype, input_shape = input_shape)
}

# Keras-style per-session unique names: base, base_1, base_2, ...
auto_layer_name <- function(base) {
  n <- the$name_counts[[base]] %||% 0L
  the$name_counts[[base]] <- n + 1L
  if (n == 0L) base else paste0(base, "_", n)
}
