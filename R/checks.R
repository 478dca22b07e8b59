# Argument checks shared by the exported functions. Each returns the
# normalised value or raises a classed error naming `arg` and the value given.

is_whole <- function(x) {
  is.numeric(x) && !is.na(x) && is.finite(x) && x == trunc(x)
}

# One or two positive whole numbers (vector or list) -> integer(2).
check_int_pair <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (is.list(x) && !is.data.frame(x) && all(vapply(x, function(v) length(v) == 1L, TRUE))) {
    x <- unlist(x, use.names = FALSE)
  }
  what <- sprintf("`%s` must be one or two positive whole numbers", arg)
  if (!is.numeric(x)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "type", call = call)
  }
  if (!length(x) %in% 1:2 || !all(vapply(x, is_whole, TRUE)) || any(x < 1) ||
      any(x > .Machine$integer.max)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "value", call = call)
  }
  rep_len(as.integer(x), 2L)
}

# A single positive whole number -> integer(1).
check_count <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  what <- sprintf("`%s` must be a single positive whole number", arg)
  if (is.list(x) && length(x) == 1L) x <- x[[1]]
  if (!is.numeric(x)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "type", call = call)
  }
  if (length(x) != 1L || !is_whole(x) || x < 1 || x > .Machine$integer.max) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "value", call = call)
  }
  as.integer(x)
}

# One of `choices`, matched case-insensitively -> the canonical lower-case choice.
check_choice <- function(x, choices, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  what <- sprintf("`%s` must be one of %s", arg, paste0('"', choices, '"', collapse = ", "))
  if (!is.character(x) || length(x) != 1L || is.na(x)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))),
                    if (is.character(x)) "value" else "type", call = call)
  }
  hit <- match(tolower(x), choices)
  if (is.na(hit)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "value", call = call)
  }
  choices[[hit]]
}

check_flag <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be TRUE or FALSE", arg), x = sprintf("You supplied %s.", format_value(x))),
      if (is.logical(x)) "value" else "type", call = call
    )
  }
  x
}

check_string <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be a single non-empty string", arg), x = sprintf("You supplied %s.", format_value(x))),
      if (is.character(x)) "value" else "type", call = call
    )
  }
  x
}

# Turns an array-like `x` into a double array with a dim attribute, or errors.
# Integer and logical arrays convert (as Keras casts them); everything else
# that is not numeric is a type error.
as_double_array <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (is.data.frame(x) || !(is.numeric(x) || is.logical(x)) || is.object(x) && !is.array(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be a numeric array", arg), x = sprintf("You supplied %s.", format_value(x))),
      "type", call = call
    )
  }
  if (is.null(dim(x))) {
    abort_depthwise(
      c(sprintf("`%s` must be an array with a `dim` attribute", arg),
        x = sprintf("You supplied a %s vector of length %d.", typeof(x), length(x))),
      "shape", call = call
    )
  }
  # Only a type conversion copies; a double array (dimnames and all) goes to
  # C++ as it is, since the kernels read nothing but the data and dim.
  if (!is.double(x)) storage.mode(x) <- "double"
  x
}
