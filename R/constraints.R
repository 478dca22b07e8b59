#' Weight constraints
#'
#' Projections applied to a weight array after it is updated, with Keras 3's
#' formulas. A constraint is a function: call it on an array to get the
#' constrained array.
#'
#' * `constraint_maxnorm()`: rescales each slice whose L2 norm along `axis`
#'   exceeds `max_value`.
#' * `constraint_minmaxnorm()`: moves each slice's norm into
#'   `[min_value, max_value]`, by the fraction `rate`.
#' * `constraint_nonneg()`: sets negative weights to 0.
#' * `constraint_unitnorm()`: scales each slice to unit norm.
#'
#' `axis` counts from 1, as in keras3: for a depthwise kernel of dim `(kh,
#' kw, C, M)`, `axis = c(1, 2)` constrains each `kh x kw` filter. Norms are
#' taken over the axes in `axis`, one norm per combination of the other axes.
#'
#' Keras applies constraints after each optimizer step. This package has no
#' optimizer, so constraints run when you ask: [apply_constraints()] on a
#' layer or model, or `set_weights(object, weights, constrain = TRUE)`.
#'
#' @param max_value,min_value Bounds of the norm.
#' @param rate Fraction of the way to move the norm into the bounds (1 =
#'   all the way).
#' @param axis Axis or axes (counting from 1) over which norms are taken.
#' @returns A function of class `depthwise_constraint`.
#' @name constraints
#' @examples
#' w <- array(c(3, 4, 0.3, 0.4), c(2, 2))
#' constraint_maxnorm(max_value = 1, axis = 1)(w)
#' constraint_nonneg()(array(c(-1, 2), c(1, 2)))
NULL

#' @rdname constraints
#' @export
constraint_maxnorm <- function(max_value = 2, axis = 1) {
  check_number(max_value)
  new_constraint("MaxNorm", list(max_value = max_value, axis = check_axes(axis)))
}

#' @rdname constraints
#' @export
constraint_minmaxnorm <- function(min_value = 0, max_value = 1, rate = 1, axis = 1) {
  check_number(min_value)
  check_number(max_value)
  check_number(rate)
  if (min_value > max_value) {
    abort_depthwise(c("`min_value` must not exceed `max_value`",
                      x = sprintf("You supplied min_value = %s, max_value = %s.", min_value, max_value)),
                    "incompatible")
  }
  new_constraint("MinMaxNorm", list(min_value = min_value, max_value = max_value, rate = rate,
                                    axis = check_axes(axis)))
}

#' @rdname constraints
#' @export
constraint_nonneg <- function() new_constraint("NonNeg", list())

#' @rdname constraints
#' @export
constraint_unitnorm <- function(axis = 1) {
  new_constraint("UnitNorm", list(axis = check_axes(axis)))
}

check_axes <- function(axis, arg = rlang::caller_arg(axis), call = rlang::caller_env()) {
  if (is.list(axis)) axis <- unlist(axis)
  if (!is.numeric(axis) || !length(axis) || !all(vapply(axis, is_whole, TRUE)) || any(axis < 1) ||
      anyDuplicated(axis)) {
    abort_depthwise(
      c(sprintf("`%s` must be one or more distinct axis numbers counting from 1", arg),
        x = sprintf("You supplied %s.", format_value(axis))),
      if (is.numeric(axis)) "value" else "type", call = call
    )
  }
  as.integer(axis)
}

new_constraint <- function(class_name, config) {
  fn <- function(w) constrain(class_name, config, w)
  structure(fn, class = c("depthwise_constraint", "function"),
            class_name = class_name, config = config)
}

# Keras' backend epsilon, added to norms before dividing.
keras_epsilon <- 1e-7

constrain <- function(class_name, config, w, call = rlang::caller_env()) {
  dims <- dim(w) %||% length(w)
  w <- array(as.double(w), dims)
  if (class_name == "NonNeg") return(w * (w >= 0))
  axis <- config$axis
  if (any(axis > length(dims))) {
    abort_depthwise(
      c(sprintf("Constraint axis %s does not exist for a weight of dim %s",
                paste(axis, collapse = ", "), format_dims(dims))),
      "shape", call = call
    )
  }
  keep <- setdiff(seq_along(dims), axis)
  # sqrt(sum(w^2)) over `axis`, broadcast back to w's shape.
  norms <- if (length(keep)) sqrt(apply(w * w, keep, sum)) else sqrt(sum(w * w))
  norms <- if (length(keep)) aperm(array(norms, c(dims[keep], dims[axis])), order(c(keep, axis))) else
    array(norms, dims)
  desired <- switch(class_name,
    MaxNorm = pmin(pmax(norms, 0), config$max_value),
    MinMaxNorm = config$rate * pmin(pmax(norms, config$min_value), config$max_value) +
      (1 - config$rate) * norms,
    UnitNorm = 1
  )
  w * (desired / (keras_epsilon + norms))
}

#' @export
print.depthwise_constraint <- function(x, ...) {
  print_callable_object("constraint", x)
}

resolve_constraint <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  resolve_by_name(x, "constraint",
                  list(max_norm = constraint_maxnorm, min_max_norm = constraint_minmaxnorm,
                       non_neg = constraint_nonneg, unit_norm = constraint_unitnorm),
                  arg = arg, call = call)
}

# Runs a constraint (possibly a user's function) and checks the shape it returns.
constrained <- function(constraint, w, what, call = rlang::caller_env()) {
  out <- call_user_function(constraint, w, what = paste(what, "constraint"), call = call)
  if (!(is.numeric(out) || is.logical(out)) || length(out) != length(w)) {
    abort_depthwise(
      c(sprintf("The %s constraint must return an array of the weight's size (%d)", what, length(w)),
        x = sprintf("It returned %s.", format_value(out))),
      "shape", call = call
    )
  }
  array(as.double(out), dim(w) %||% length(w))
}
