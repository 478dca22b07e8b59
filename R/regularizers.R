#' Weight regularizers
#'
#' Penalties on a layer's weights (or, as `activity_regularizer`, on its
#' output) with Keras 3's formulas: `regularizer_l1()` gives `l1 *
#' sum(abs(w))`, `regularizer_l2()` gives `l2 * sum(w^2)`, and
#' `regularizer_l1_l2()` their sum. A regularizer is a function: call it on an
#' array to get the penalty. Any R function of one array returning one number
#' works in its place. A layer lists its current penalties in
#' `layer$losses`.
#'
#' @param l1,l2 Non-negative penalty factors.
#' @returns A function of class `depthwise_regularizer`.
#' @name regularizers
#' @examples
#' reg <- regularizer_l2(0.01)
#' reg(array(1:4, c(2, 2)))
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, depthwise_regularizer = reg,
#'                                  input_shape = c(8, 8, 2))
#' layer$losses
NULL

#' @rdname regularizers
#' @export
regularizer_l1 <- function(l1 = 0.01) {
  new_regularizer("L1", list(l1 = check_penalty(l1)))
}

#' @rdname regularizers
#' @export
regularizer_l2 <- function(l2 = 0.01) {
  new_regularizer("L2", list(l2 = check_penalty(l2)))
}

#' @rdname regularizers
#' @export
regularizer_l1_l2 <- function(l1 = 0.01, l2 = 0.01) {
  new_regularizer("L1L2", list(l1 = check_penalty(l1), l2 = check_penalty(l2)))
}

check_penalty <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  check_number(x, arg = arg, call = call)
  if (x < 0) {
    abort_depthwise(c(sprintf("`%s` must be non-negative", arg), x = sprintf("You supplied %s.", x)),
                    "value", call = call)
  }
  x
}

new_regularizer <- function(class_name, config) {
  fn <- function(x) regularizer_penalty(class_name, config, x)
  structure(fn, class = c("depthwise_regularizer", "function"),
            class_name = class_name, config = config)
}

regularizer_penalty <- function(class_name, config, x) {
  x <- as.double(x)
  l1 <- config$l1 %||% 0
  l2 <- config$l2 %||% 0
  penalty <- 0
  if (l1 != 0) penalty <- penalty + l1 * sum(abs(x))
  if (l2 != 0) penalty <- penalty + l2 * sum(x * x)
  penalty
}

#' @export
print.depthwise_regularizer <- function(x, ...) {
  print_callable_object("regularizer", x)
}

print_callable_object <- function(kind, x) {
  cfg <- attr(x, "config")
  args <- vapply(names(cfg), function(k) paste0(k, " = ", format_value(cfg[[k]])), "")
  cat("<", kind, " ", attr(x, "class_name"), ">",
      if (length(args)) paste0(" ", paste(args, collapse = ", ")), "\n", sep = "")
  invisible(x)
}

# NULL, a regularizer object, a Keras name or an R function.
resolve_regularizer <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  resolve_by_name(x, "regularizer",
                  list(l1 = regularizer_l1, l2 = regularizer_l2, l1_l2 = regularizer_l1_l2),
                  arg = arg, call = call)
}

# Calls a regularizer (possibly a user's function) and checks it gave one number.
penalty_of <- function(regularizer, x, what, call = rlang::caller_env()) {
  value <- call_user_function(regularizer, x, what = paste(what, "regularizer"), call = call)
  if (!is.numeric(value) || length(value) != 1L) {
    abort_depthwise(
      c(sprintf("The %s regularizer must return a single number", what),
        x = sprintf("It returned %s.", format_value(value))),
      "value", call = call
    )
  }
  as.double(value)
}
