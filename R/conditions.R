# Every error the package raises goes through abort_depthwise(), so each one
# has class "depthwise_error" plus a subclass saying what went wrong:
#   depthwise_error_type          wrong kind of value (string where a number belongs)
#   depthwise_error_value         right kind, bad value (0, 1.5, NA, unknown name)
#   depthwise_error_shape         array or weight shapes that do not fit
#   depthwise_error_incompatible  arguments that cannot be used together
#   depthwise_error_unsupported   valid Keras usage this package does not do (yet)
#   depthwise_error_state         a layer used before it can be (not built)
#   depthwise_error_size          a result too large for R or memory
abort_depthwise <- function(message, subclass, ..., call = rlang::caller_env()) {
  rlang::abort(
    message,
    class = c(paste0("depthwise_error_", subclass), "depthwise_error"),
    ...,
    call = call
  )
}

# A short, readable rendering of a user-supplied value for error messages.
# Never fails: whatever `x` is (a classed object, a huge vector, a string in
# an invalid encoding), it returns one string.
format_value <- function(x) {
  text <- tryCatch(format_value_unsafe(x), error = function(e) NULL)
  if (is.character(text) && length(text) == 1L && !is.na(text)) text else
    sprintf("an object of type %s", typeof(x))
}

format_value_unsafe <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.function(x)) return("a function")
  if (is.environment(x)) return("an environment")
  if (is.data.frame(x)) {
    return(sprintf("a data frame with %d column%s", ncol(x), if (ncol(x) == 1L) "" else "s"))
  }
  cls <- if (is.object(x)) sprintf(" of class <%s>", paste(class(x), collapse = "/")) else ""
  if (!is.null(dim(x))) {
    return(sprintf("%s %s array%s of dim %s", with_article(typeof(x)), typeof(x), cls,
                   paste(dim(x), collapse = "x")))
  }
  if (is.object(x)) {
    return(sprintf("%s %s vector%s of length %.0f", with_article(typeof(x)), typeof(x), cls,
                   as.numeric(length(x))))
  }
  if ((is.atomic(x) || is.list(x)) && length(x) > 6) {
    return(sprintf("%s %s vector of length %.0f", with_article(typeof(x)), typeof(x),
                   as.numeric(length(x))))
  }
  if (is.character(x) && any(nchar(x, type = "bytes", allowNA = TRUE) > 80, na.rm = TRUE)) {
    return(sprintf("a character vector of length %d with long strings", length(x)))
  }
  # nlines: deparse() is quadratic in nesting and would print every
  # attribute in full; the message shows 80 characters of it at most.
  text <- paste(deparse(x, width.cutoff = 60L, nlines = 2L), collapse = " ")
  if (nchar(text, type = "bytes") > 80) text <- paste0(substr(text, 1, 77), "...")
  text
}

# Calls a function the user supplied (activation, initializer, regularizer,
# constraint); an error inside it becomes a classed error saying which one.
call_user_function <- function(fn, ..., what, call = rlang::caller_env()) {
  tryCatch(
    fn(...),
    error = function(e) {
      abort_depthwise(c(sprintf("The %s failed", what), x = conditionMessage(e)),
                      "value", parent = e, call = call)
    }
  )
}

# Error for names outside `known` (in `...`, a config, ...).
abort_unknown_names <- function(unknown, known, where, call = rlang::caller_env()) {
  abort_depthwise(
    c(sprintf("Unknown %s in %s: %s", if (length(unknown) > 1) "names" else "name", where,
              paste0("`", unknown, "`", collapse = ", ")),
      i = paste("Known names:", paste0("`", known, "`", collapse = ", "))),
    "value", call = call
  )
}

# NULL, a function (kept), or a name looked up in `constructors` (called with
# no arguments) -> the object; anything else is an error.
resolve_by_name <- function(x, kind, constructors, arg, call) {
  if (is.null(x) || is.function(x)) return(x)
  what <- sprintf("`%s` must be NULL, a %s or a function", arg, kind)
  if (is.character(x) && length(x) == 1L && !is.na(x)) {
    # tolower() fails on invalid UTF-8; such a string is simply an unknown name.
    key <- if (validUTF8(x)) tolower(x) else ""
    constructor <- if (key %in% names(constructors)) constructors[[key]]
    if (!is.null(constructor)) return(constructor())
    abort_depthwise(
      c(what, x = sprintf("Unknown %s %s.", kind, format_value(x)),
        i = paste("Valid names:", paste0('"', names(constructors), '"', collapse = ", "))),
      "value", call = call
    )
  }
  abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "type", call = call)
}

with_article <- function(word) if (substr(word, 1, 1) %in% c("a", "e", "i", "o", "u")) "an" else "a"
