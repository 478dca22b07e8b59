#' A layer's or model's configuration, and back
#'
#' `get_config()` returns the Keras configuration: for a layer the keys
#' `name`, `trainable`, `dtype`, `depth_multiplier`, `kernel_size`,
#' `strides`, `padding`, `data_format`, `dilation_rate`, `activation`,
#' `use_bias`, `depthwise_initializer`, `bias_initializer`,
#' `depthwise_regularizer`, `bias_regularizer`, `activity_regularizer`,
#' `depthwise_constraint` and `bias_constraint`, with initializers,
#' regularizers and constraints serialised as Keras does (`class_name` and
#' `config`); for a sequential model its `name`, `trainable`, `layers`
#' (each with `class_name` and `config`) and `build_input_shape`.
#' `from_config()` makes a new, equal object from such a list. Weights are not
#' part of the configuration (as in Keras): copy them with [get_weights()] and
#' [set_weights()], or save the whole object with `saveRDS()`.
#'
#' Two differences from Keras' Python serialisation, both because this is R:
#' a constraint's `axis` counts from 1, and an R function given as
#' activation, initializer, regularizer or constraint is stored as itself.
#'
#' @param object A layer or a sequential model.
#' @param config A list made by `get_config()`.
#' @returns `get_config()`: a named list with attribute `class_name`
#'   (`"DepthwiseConv2D"` or `"Sequential"`). `from_config()`: a layer or a
#'   model.
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, strides = 2, activation = "relu")
#' config <- get_config(layer)
#' str(config[c("kernel_size", "strides", "activation")])
#' copy <- from_config(config)
#' identical(get_config(copy), config)
get_config <- function(object) UseMethod("get_config")

#' @export
get_config.default <- function(object) check_layer_or_model(object)

layer_config_keys <- c(
  "name", "trainable", "dtype", "depth_multiplier", "kernel_size", "strides", "padding",
  "data_format", "dilation_rate", "activation", "use_bias", "depthwise_initializer",
  "bias_initializer", "depthwise_regularizer", "bias_regularizer", "activity_regularizer",
  "depthwise_constraint", "bias_constraint"
)

#' @export
get_config.depthwise_layer <- function(object) {
  cfg <- layer_state(object)$config
  out <- lapply(layer_config_keys, function(key) {
    value <- cfg[[key]]
    switch(key,
      kernel_size = , strides = , dilation_rate = as.list(value),
      depthwise_initializer = , bias_initializer = serialize_object(value, "keras.initializers"),
      depthwise_regularizer = , bias_regularizer = , activity_regularizer =
        serialize_object(value, "keras.regularizers"),
      depthwise_constraint = , bias_constraint = serialize_object(value, "keras.constraints"),
      value
    )
  })
  names(out) <- layer_config_keys
  structure(out, class_name = "DepthwiseConv2D")
}

# Keras' serialised form of an initializer, regularizer or constraint; R
# functions (and NULL) are kept as they are.
serialize_object <- function(x, module) {
  if (is.null(x)) return(NULL)
  if (inherits(x, "depthwise_initializer")) {
    return(list(module = module, class_name = x$class_name, config = x$config, registered_name = NULL))
  }
  if (inherits(x, c("depthwise_regularizer", "depthwise_constraint"))) {
    return(list(module = module, class_name = attr(x, "class_name"), config = attr(x, "config"),
                registered_name = NULL))
  }
  x
}

deserialize_object <- function(x, kind, arg, call) {
  if (is.null(x) || is.function(x) || is.character(x)) return(x)
  if (!is.list(x) || !is.character(x$class_name) || length(x$class_name) != 1L ||
      !(is.null(x$config) || is.list(x$config))) {
    abort_depthwise(
      c(sprintf("`config$%s` is not a valid serialised %s", arg, kind),
        x = sprintf("It is %s.", format_value(x)),
        i = "Expected NULL, a name, a function, or a list with `class_name` and `config`."),
      "value", call = call
    )
  }
  constructor <- serialized_constructors()[[kind]][[x$class_name]]
  if (is.null(constructor)) {
    abort_depthwise(
      c(sprintf("`config$%s` names an unknown %s class", arg, kind),
        x = sprintf("class_name = %s.", format_value(x$class_name)),
        i = paste("Known:", paste0('"', names(serialized_constructors()[[kind]]), '"', collapse = ", "))),
      "value", call = call
    )
  }
  args <- x$config %||% list()
  tryCatch(
    do.call(constructor, args),
    depthwise_error = function(e) rlang::abort(
      sprintf("`config$%s` has invalid settings", arg), parent = e, call = call,
      class = c("depthwise_error_value", "depthwise_error")
    ),
    error = function(e) rlang::abort(
      sprintf("`config$%s` has invalid settings", arg), parent = e, call = call,
      class = c("depthwise_error_value", "depthwise_error")
    )
  )
}

# A function, not a list, so the constructors exist whatever the collation order.
serialized_constructors <- function() list(
  initializer = list(
    GlorotUniform = initializer_glorot_uniform, GlorotNormal = initializer_glorot_normal,
    HeUniform = initializer_he_uniform, HeNormal = initializer_he_normal,
    LecunUniform = initializer_lecun_uniform, LecunNormal = initializer_lecun_normal,
    Zeros = initializer_zeros, Ones = initializer_ones, Constant = initializer_constant,
    RandomUniform = initializer_random_uniform, RandomNormal = initializer_random_normal,
    TruncatedNormal = initializer_truncated_normal,
    VarianceScaling = function(scale = 1, mode = "fan_in", distribution = "truncated_normal", seed = NULL)
      initializer_variance_scaling(scale, mode, distribution, seed)
  ),
  regularizer = list(L1 = regularizer_l1, L2 = regularizer_l2, L1L2 = regularizer_l1_l2),
  constraint = list(MaxNorm = constraint_maxnorm, MinMaxNorm = constraint_minmaxnorm,
                    NonNeg = constraint_nonneg, UnitNorm = constraint_unitnorm)
)

#' @rdname get_config
#' @export
from_config <- function(config) {
  if (!is.list(config) || is.data.frame(config) || is.null(names(config)) || any(!nzchar(names(config)))) {
    abort_depthwise(
      c("`config` must be a named list made by get_config()", x = sprintf("You supplied %s.", format_value(config))),
      "type"
    )
  }
  class_name <- attr(config, "class_name") %||% if ("layers" %in% names(config)) "Sequential" else "DepthwiseConv2D"
  if (!is.character(class_name) || length(class_name) != 1L || is.na(class_name)) class_name <- "?"
  switch(class_name,
    DepthwiseConv2D = layer_from_config(config),
    Sequential = model_from_config(config),
    abort_depthwise(
      c("`config` describes an unknown class", x = sprintf("class_name = %s.", format_value(class_name)),
        i = 'Known: "DepthwiseConv2D", "Sequential".'),
      "value"
    )
  )
}

layer_from_config <- function(config, call = rlang::caller_env()) {
  unknown <- setdiff(names(config), layer_config_keys)
  if (length(unknown)) abort_unknown_names(unknown, layer_config_keys, "`config`", call = call)
  if (is.null(config$kernel_size)) {
    abort_depthwise("`config$kernel_size` is required", "value", call = call)
  }
  for (key in c("depthwise_initializer", "bias_initializer")) {
    if (!is.null(config[[key]])) config[[key]] <- deserialize_object(config[[key]], "initializer", key, call)
  }
  for (key in c("depthwise_regularizer", "bias_regularizer", "activity_regularizer")) {
    config[key] <- list(deserialize_object(config[[key]], "regularizer", key, call))
  }
  for (key in c("depthwise_constraint", "bias_constraint")) {
    config[key] <- list(deserialize_object(config[[key]], "constraint", key, call))
  }
  # Keys a config leaves out take the layer's defaults, as Keras' from_config does.
  defaults <- formals(layer_depthwise_conv_2d)
  defaults <- lapply(defaults[setdiff(names(defaults), c("object", "kernel_size", "..."))], eval)
  config <- c(config, defaults[setdiff(names(defaults), names(config))])
  options <- c("name", "trainable", "dtype")
  args <- config[setdiff(names(config), options)]
  args <- lapply(args, function(v) if (is.list(v) && !is.function(v) && all(lengths(v) == 1L) &&
                                         all(vapply(v, is.numeric, TRUE))) unlist(v) else v)
  dots <- config[intersect(names(config), options)]
  dots <- dots[!vapply(dots, is.null, TRUE)]
  # A config names its layer; the name is kept, so no automatic name is used.
  do.call(new_depthwise_conv_2d, c(args, dots, list(call = call)))
}

#' @export
get_config.depthwise_model <- function(object) {
  state <- model_state(object)
  layers <- lapply(state$layers, function(l) {
    list(module = "keras.layers", class_name = "DepthwiseConv2D", config = get_config(l),
         build_config = if (l$built) list(input_shape = as.integer(layer_state(l)$build_input_shape)))
  })
  structure(
    list(name = state$name, trainable = state$trainable, layers = layers,
         build_input_shape = if (!is.null(state$input_shape)) as.integer(state$input_shape)),
    class_name = "Sequential"
  )
}

model_from_config <- function(config, call = rlang::caller_env()) {
  known <- c("name", "trainable", "dtype", "layers", "build_input_shape")
  unknown <- setdiff(names(config), known)
  if (length(unknown)) abort_unknown_names(unknown, known, "`config`", call = call)
  if (!is.list(config$layers %||% list())) {
    abort_depthwise(c("`config$layers` must be a list", x = sprintf("It is %s.", format_value(config$layers))),
                    "value", call = call)
  }
  layers <- lapply(config$layers, function(entry) {
    if (!is.list(entry) || !is.list(entry$config) || !identical(entry$class_name, "DepthwiseConv2D")) {
      abort_depthwise(
        c("Each entry of `config$layers` must be a list with class_name \"DepthwiseConv2D\" and a `config`",
          x = sprintf("Found %s.", format_value(entry))),
        "value", call = call
      )
    }
    layer_from_config(entry$config, call = call)
  })
  input_shape <- NULL
  batch <- NULL
  if (!is.null(config$build_input_shape)) {
    dims <- as_dims(config$build_input_shape, arg = "config$build_input_shape", call = call)
    if (length(dims) != 4L) {
      abort_depthwise(c("`config$build_input_shape` must have 4 sizes",
                        x = sprintf("It is %s.", format_value(config$build_input_shape))), "shape", call = call)
    }
    input_shape <- dims[-1]
    if (!is.na(dims[1])) batch <- dims[1]
  }
  keras_model_sequential(input_shape = input_shape, name = config$name,
                         trainable = config$trainable %||% TRUE, input_batch_size = batch,
                         layers = layers)
}
