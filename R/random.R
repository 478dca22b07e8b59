#' Random arrays
#'
#' Draw arrays of random numbers, as keras3's `random_uniform()` and
#' `random_normal()` do, but returning base R arrays. Results follow R's
#' random number generator, so `set.seed()` makes them reproducible; a
#' `seed` draws from its own stream and leaves the session's stream alone.
#'
#' @param shape The array's dimensions: a numeric vector, a list or a
#'   [shape()].
#' @param minval,maxval Bounds of the uniform distribution.
#' @param mean,stddev Mean and standard deviation of the normal distribution.
#' @param dtype `NULL`, `"float32"` or `"float64"`. Values are always R
#'   doubles; the argument is accepted for keras3 compatibility.
#' @param seed `NULL` or a whole number.
#' @returns A double array of dimension `shape`.
#' @export
#' @examples
#' x <- random_uniform(c(4, 10, 10, 12))
#' shape(x)
#' random_normal(c(2, 3), seed = 1)
random_uniform <- function(shape, minval = 0, maxval = 1, dtype = NULL, seed = NULL) {
  dims <- check_shape_arg(shape)
  minval <- check_number(minval)
  maxval <- check_number(maxval)
  if (minval > maxval) {
    abort_depthwise(
      c("`minval` must not exceed `maxval`", x = sprintf("You supplied minval = %s, maxval = %s.", minval, maxval)),
      "incompatible"
    )
  }
  check_dtype(dtype)
  seed <- check_seed(seed)
  with_seed(seed, as_array(stats::runif(prod(dims), minval, maxval), dims))
}

#' @rdname random_uniform
#' @export
random_normal <- function(shape, mean = 0, stddev = 1, dtype = NULL, seed = NULL) {
  dims <- check_shape_arg(shape)
  mean <- check_number(mean)
  stddev <- check_number(stddev)
  if (stddev < 0) {
    abort_depthwise(c("`stddev` must be non-negative", x = sprintf("You supplied %s.", stddev)), "value")
  }
  check_dtype(dtype)
  seed <- check_seed(seed)
  with_seed(seed, as_array(stats::rnorm(prod(dims), mean, stddev), dims))
}

# Gives a freshly made vector its dims in place; array() would copy it.
as_array <- function(values, dims) {
  dim(values) <- dims
  values
}

check_shape_arg <- function(shape, arg = rlang::caller_arg(shape), call = rlang::caller_env()) {
  dims <- as_dims(shape, arg = arg, call = call)
  if (!length(dims) || anyNA(dims)) {
    abort_depthwise(
      c(sprintf("`%s` must be fully known: one or more whole numbers, no NA", arg),
        x = sprintf("You supplied %s.", format_value(shape))),
      "value", call = call
    )
  }
  check_allocation(prod(as.numeric(dims)), sprintf("An array of shape %s", format_dims(dims)),
                   call = call)
  dims
}

check_number <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.numeric(x) || length(x) != 1L || !is.finite(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be a single finite number", arg), x = sprintf("You supplied %s.", format_value(x))),
      if (is.numeric(x)) "value" else "type", call = call
    )
  }
  # A plain double: a 1x1 matrix or a classed number would otherwise carry
  # its attributes into the arithmetic (with warnings, or a classed result).
  as.double(unclass(x))
}

check_dtype <- function(dtype, arg = rlang::caller_arg(dtype), call = rlang::caller_env()) {
  if (is.null(dtype)) return(NULL)
  check_choice(dtype, c("float32", "float64"), arg = arg, call = call)
}

check_seed <- function(seed, arg = rlang::caller_arg(seed), call = rlang::caller_env()) {
  if (is.null(seed)) return(NULL)
  if (!is.numeric(seed) || length(seed) != 1L || !is_whole(seed) || abs(seed) > .Machine$integer.max) {
    abort_depthwise(
      c(sprintf("`%s` must be NULL or a single whole number", arg), x = sprintf("You supplied %s.", format_value(seed))),
      if (is.numeric(seed)) "value" else "type", call = call
    )
  }
  as.integer(seed)
}

# Evaluates `expr` with R's generator seeded by `seed`, then restores the
# session's generator state; with `seed = NULL` it just evaluates `expr`.
with_seed <- function(seed, expr) {
  if (is.null(seed)) return(expr)
  env <- globalenv()
  had_seed <- exists(".Random.seed", envir = env, inherits = FALSE)
  old_seed <- if (had_seed) get(".Random.seed", envir = env, inherits = FALSE)
  on.exit(
    if (had_seed) assign(".Random.seed", old_seed, envir = env) else
      suppressWarnings(rm(".Random.seed", envir = env)),
    add = TRUE
  )
  set.seed(seed)
  expr
}
