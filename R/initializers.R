#' Weight initializers
#'
#' Initializer objects with the names, arguments and formulas of keras3.
#' Pass one (or its name, such as `"he_normal"`) as `depthwise_initializer`
#' or `bias_initializer`. Fans follow Keras: for a `(kh, kw, C, M)` kernel,
#' `fan_in = kh * kw * C` and `fan_out = kh * kw * M`.
#'
#' Without a `seed`, values come from R's generator (reproducible under
#' `set.seed()`); with a `seed`, every call gives the same values, as a
#' seeded Keras 3 initializer does.
#'
#' @inheritParams random_uniform
#' @returns `initializer_*()`: an object of class `depthwise_initializer`,
#'   to pass to a layer or to `initializer_draw()`. `initializer_draw()`: a
#'   double array of dimension `shape`.
#' @name initializers
#' @examples
#' init <- initializer_he_normal(seed = 1)
#' dim(initializer_draw(init, c(3, 3, 4, 1)))
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, depthwise_initializer = init)
NULL

new_initializer <- function(class_name, config) {
  structure(list(class_name = class_name, config = config), class = "depthwise_initializer")
}

# The named variance-scaling initializers keep only `seed` in their config
# (as Keras serialises them); their fixed settings live here.
variance_scaling_presets <- list(
  GlorotUniform = list(scale = 1, mode = "fan_avg", distribution = "uniform"),
  GlorotNormal = list(scale = 1, mode = "fan_avg", distribution = "truncated_normal"),
  HeUniform = list(scale = 2, mode = "fan_in", distribution = "uniform"),
  HeNormal = list(scale = 2, mode = "fan_in", distribution = "truncated_normal"),
  LecunUniform = list(scale = 1, mode = "fan_in", distribution = "uniform"),
  LecunNormal = list(scale = 1, mode = "fan_in", distribution = "truncated_normal")
)

variance_scaling <- function(class_name, seed) {
  new_initializer(class_name, list(seed = check_seed(seed)))
}

#' @rdname initializers
#' @export
initializer_glorot_uniform <- function(seed = NULL) {
  variance_scaling("GlorotUniform", seed)
}

#' @rdname initializers
#' @export
initializer_glorot_normal <- function(seed = NULL) {
  variance_scaling("GlorotNormal", seed)
}

#' @rdname initializers
#' @export
initializer_he_uniform <- function(seed = NULL) {
  variance_scaling("HeUniform", seed)
}

#' @rdname initializers
#' @export
initializer_he_normal <- function(seed = NULL) {
  variance_scaling("HeNormal", seed)
}

#' @rdname initializers
#' @export
initializer_lecun_uniform <- function(seed = NULL) {
  variance_scaling("LecunUniform", seed)
}

#' @rdname initializers
#' @export
initializer_lecun_normal <- function(seed = NULL) {
  variance_scaling("LecunNormal", seed)
}

#' @param scale Positive scaling factor of the variance.
#' @param mode `"fan_in"`, `"fan_out"` or `"fan_avg"`.
#' @param distribution `"truncated_normal"`, `"untruncated_normal"` or `"uniform"`.
#' @rdname initializers
#' @export
initializer_variance_scaling <- function(scale = 1, mode = "fan_in",
                                         distribution = "truncated_normal", seed = NULL) {
  scale <- check_number(scale)
  if (scale <= 0) abort_depthwise(c("`scale` must be positive", x = sprintf("You supplied %s.", scale)), "value")
  mode <- check_choice(mode, c("fan_in", "fan_out", "fan_avg"))
  distribution <- check_choice(distribution, c("truncated_normal", "untruncated_normal", "uniform"))
  new_initializer("VarianceScaling", list(scale = scale, mode = mode, distribution = distribution,
                                          seed = check_seed(seed)))
}

#' @rdname initializers
#' @export
initializer_zeros <- function() new_initializer("Zeros", list())

#' @rdname initializers
#' @export
initializer_ones <- function() new_initializer("Ones", list())

#' @param value The constant value.
#' @rdname initializers
#' @export
initializer_constant <- function(value = 0) {
  new_initializer("Constant", list(value = check_number(value)))
}

#' @rdname initializers
#' @export
initializer_random_uniform <- function(minval = -0.05, maxval = 0.05, seed = NULL) {
  minval <- check_number(minval)
  maxval <- check_number(maxval)
  if (minval > maxval) {
    abort_depthwise(c("`minval` must not exceed `maxval`",
                      x = sprintf("You supplied minval = %s, maxval = %s.", minval, maxval)), "incompatible")
  }
  new_initializer("RandomUniform", list(minval = minval, maxval = maxval, seed = check_seed(seed)))
}

#' @rdname initializers
#' @export
initializer_random_normal <- function(mean = 0, stddev = 0.05, seed = NULL) {
  new_initializer("RandomNormal", normal_config(mean, stddev, seed))
}

#' @rdname initializers
#' @export
initializer_truncated_normal <- function(mean = 0, stddev = 0.05, seed = NULL) {
  new_initializer("TruncatedNormal", normal_config(mean, stddev, seed))
}

normal_config <- function(mean, stddev, seed, call = rlang::caller_env()) {
  mean <- check_number(mean, call = call)
  stddev <- check_number(stddev, call = call)
  if (stddev < 0) {
    abort_depthwise(c("`stddev` must be non-negative", x = sprintf("You supplied %s.", stddev)), "value", call = call)
  }
  list(mean = mean, stddev = stddev, seed = check_seed(seed, call = call))
}

# Keras' string identifiers (snake_case, and the class names) -> constructors.
initializer_constructors <- list(
  glorot_uniform = initializer_glorot_uniform, glorot_normal = initializer_glorot_normal,
  he_uniform = initializer_he_uniform, he_normal = initializer_he_normal,
  lecun_uniform = initializer_lecun_uniform, lecun_normal = initializer_lecun_normal,
  zeros = initializer_zeros, ones = initializer_ones, constant = initializer_constant,
  random_uniform = initializer_random_uniform, random_normal = initializer_random_normal,
  truncated_normal = initializer_truncated_normal, variance_scaling = initializer_variance_scaling
)

snake_case <- function(x) tolower(gsub("([a-z])([A-Z])", "\\1_\\2", x))

# A name, an initializer object or an R function -> an initializer object or
# the function itself.
resolve_initializer <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (inherits(x, "depthwise_initializer")) return(check_initializer_object(x, arg = arg, call = call))
  if (is.function(x)) return(x)
  if (is.character(x) && length(x) == 1L && !is.na(x)) {
    # gsub() fails on a string that is invalid in the session's encoding.
    key <- tryCatch(snake_case(x), error = function(e) NA_character_)
    if (key %in% names(initializer_constructors)) return(initializer_constructors[[key]]())
    abort_depthwise(
      c(sprintf("`%s` must be a Keras initializer name, an initializer object or a function", arg),
        x = sprintf("Unknown initializer %s.", format_value(x)),
        i = paste("Valid names:", paste0('"', names(initializer_constructors), '"', collapse = ", "))),
      "value", call = call
    )
  }
  abort_depthwise(
    c(sprintf("`%s` must be a Keras initializer name, an initializer object or a function", arg),
      x = sprintf("You supplied %s.", format_value(x))),
    "type", call = call
  )
}

# Every variance-scaling class name (the presets and VarianceScaling itself).
variance_scaling_classes <- c("GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
                              "LecunUniform", "LecunNormal", "VarianceScaling")

# An initializer object may come from saveRDS()/readRDS(), a config, or be
# edited by hand: before anything is drawn from it, its class name and every
# config field must be what the constructors make, so a corrupt one is a
# classed error rather than a wrong draw or an R error from deep inside.
check_initializer_object <- function(x, arg = "initializer", call = rlang::caller_env()) {
  fail <- function(problem, subclass = "value") {
    abort_depthwise(
      c(sprintf("`%s` is not a valid initializer object: %s", arg, problem),
        x = sprintf("You supplied %s.", format_value(unclass(x))),
        i = "Make initializers with initializer_*() or pass a Keras name such as \"glorot_uniform\"."),
      subclass, call = call
    )
  }
  if (!is.list(x) || !is.character(x$class_name) || length(x$class_name) != 1L || is.na(x$class_name)) {
    fail("it needs a `class_name` string", "type")
  }
  known <- c("Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal",
             variance_scaling_classes)
  if (!x$class_name %in% known) fail(sprintf("unknown class_name %s", format_value(x$class_name)))
  cfg <- x$config
  if (!is.list(cfg) || is.object(cfg)) fail("its `config` must be a list", "type")
  field <- function(name) sprintf("%s$config$%s", arg, name)
  number <- function(name) cfg[[name]] <<- check_number(cfg[[name]], arg = field(name), call = call)
  switch(x$class_name,
    Constant = number("value"),
    RandomUniform = {
      number("minval")
      number("maxval")
      if (cfg$minval > cfg$maxval) fail("`minval` exceeds `maxval`")
    },
    RandomNormal = ,
    TruncatedNormal = {
      number("mean")
      number("stddev")
      if (cfg$stddev < 0) fail("`stddev` is negative")
    },
    Zeros = ,
    Ones = NULL,
    VarianceScaling = {
      number("scale")
      if (cfg$scale <= 0) fail("`scale` is not positive")
      cfg$mode <- check_choice(cfg$mode, c("fan_in", "fan_out", "fan_avg"), arg = field("mode"), call = call)
      cfg$distribution <- check_choice(cfg$distribution, c("truncated_normal", "untruncated_normal", "uniform"),
                                       arg = field("distribution"), call = call)
    },
    NULL  # the named variance-scaling presets have only a seed
  )
  if (x$class_name %in% c("RandomUniform", "RandomNormal", "TruncatedNormal", variance_scaling_classes)) {
    cfg["seed"] <- list(check_seed(cfg$seed, arg = field("seed"), call = call))
  }
  new_initializer(x$class_name, cfg)
}

# Keras 3's compute_fans().
compute_fans <- function(dims) {
  dims <- as.numeric(dims)
  n <- length(dims)
  if (n == 0L) return(c(1, 1))
  if (n == 1L) return(c(dims, dims))
  if (n == 2L) return(dims)
  receptive <- prod(dims[seq_len(n - 2L)])
  c(dims[[n - 1L]] * receptive, dims[[n]] * receptive)
}

# Normal draws, redrawing any beyond two standard deviations (Keras' rule).
truncated_normal <- function(n, mean, stddev) {
  v <- stats::rnorm(n)
  out <- abs(v) > 2
  while (any(out)) {
    v[out] <- stats::rnorm(sum(out))
    out <- abs(v) > 2
  }
  mean + stddev * v
}

#' @param initializer An initializer object, a Keras initializer name or a
#'   function `function(shape, dtype = NULL)`.
#' @rdname initializers
#' @export
initializer_draw <- function(initializer, shape) {
  draw_initializer(initializer, shape, "initializer", rlang::current_env())
}

# initializer_draw() for callers whose argument has another name (a layer's
# `depthwise_initializer`), so that errors name it.
draw_initializer <- function(initializer, shape, arg, call) {
  init <- resolve_initializer(initializer, arg = arg, call = call)
  dims <- check_shape_arg(shape, call = call)
  if (is.function(init)) return(draw_from_function(init, dims, arg = arg, call = call))
  cfg <- init$config
  n <- prod(dims)
  values <- with_seed(check_seed(cfg$seed), switch(init$class_name,
    Zeros = rep(0, n),
    Ones = rep(1, n),
    Constant = rep(cfg$value, n),
    RandomUniform = stats::runif(n, cfg$minval, cfg$maxval),
    RandomNormal = stats::rnorm(n, cfg$mean, cfg$stddev),
    TruncatedNormal = truncated_normal(n, cfg$mean, cfg$stddev),
    draw_variance_scaling(n, dims, c(variance_scaling_presets[[init$class_name]], cfg))
  ))
  as_array(values, dims)
}

draw_variance_scaling <- function(n, dims, cfg) {
  fans <- compute_fans(dims)
  fan <- switch(cfg$mode, fan_in = fans[[1]], fan_out = fans[[2]], fan_avg = mean(fans))
  scale <- cfg$scale / max(1, fan)
  switch(cfg$distribution,
    uniform = {
      limit <- sqrt(3 * scale)
      stats::runif(n, -limit, limit)
    },
    untruncated_normal = stats::rnorm(n, 0, sqrt(scale)),
    # 0.8796... is the standard deviation of a unit normal truncated at +-2.
    truncated_normal = truncated_normal(n, 0, sqrt(scale) / 0.87962566103423978)
  )
}

draw_from_function <- function(fn, dims, arg = "initializer", call = rlang::caller_env()) {
  out <- call_user_function(fn, new_shape(dims), dtype = "float64",
                            what = sprintf("`%s` function", arg), call = call)
  if (!(is.numeric(out) || is.logical(out)) || length(out) != prod(dims)) {
    abort_depthwise(
      c(sprintf("The `%s` function must return %s numbers (shape %s)", arg, prod(dims), format(new_shape(dims))),
        x = sprintf("It returned %s.", format_value(out))),
      "shape", call = call
    )
  }
  if (!is.double(out) || is.object(out)) out <- as.double(out)
  attributes(out) <- list(dim = dims)
  out
}

#' @export
print.depthwise_initializer <- function(x, ...) {
  args <- vapply(names(x$config), function(k) {
    paste0(k, " = ", format_value(x$config[[k]]))
  }, "")
  cat("<initializer ", x$class_name, ">", if (length(args)) paste0(" ", paste(args, collapse = ", ")), "\n", sep = "")
  invisible(x)
}
