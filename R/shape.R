#' Build a shape, or get the shape of an array
#'
#' `shape(4, 10, 10, 12)` builds a shape; `shape(x)` with one array returns
#' its dimensions. Unknown sizes (such as a batch size not yet known) are
#' `NA` (or `NULL` in the arguments). Shapes print as `shape(4, 8, 8, 12)`,
#' as in keras3.
#'
#' @param ... Dimension sizes (numbers, vectors, lists, `NA` or `NULL` for
#'   unknown), or a single array.
#' @returns A `depthwise_shape`: an integer vector with class.
#' @export
#' @examples
#' shape(4, 10, 10, 12)
#' shape(NA, 28, 28, 3)
#' shape(array(0, c(2, 3, 4)))
shape <- function(...) {
  args <- list(...)
  if (length(args) == 1L && !is.null(dim(args[[1]])) && !inherits(args[[1]], "depthwise_shape")) {
    return(new_shape(dim(args[[1]])))
  }
  dims <- unlist(lapply(args, shape_values), use.names = FALSE)
  new_shape(dims)
}

shape_values <- function(v, call = rlang::caller_env(2), depth = 0L) {
  if (is.null(v)) return(NA_integer_)
  if (is.list(v)) {
    # A list of lists of ... 10^4 deep would overflow the C stack.
    if (depth >= 64L) {
      abort_depthwise(c("Shape sizes must be numbers, or lists of them nested at most 64 deep",
                        x = "You supplied a list nested deeper than that."), "value", call = call)
    }
    return(unlist(lapply(v, shape_values, call = call, depth = depth + 1L), use.names = FALSE))
  }
  # NA means unknown; NaN is a failed computation, not an unknown size.
  ok <- (is.numeric(v) || is.logical(v) && all(is.na(v))) &&
    all((is.na(v) & !is.nan(v)) | (is.finite(v) & v == trunc(v) & v >= 0 & v <= .Machine$integer.max))
  if (!ok) {
    abort_depthwise(
      c("Shape sizes must be non-negative whole numbers or NA",
        x = sprintf("You supplied %s.", format_value(v))),
      if (is.numeric(v)) "value" else "type", call = call
    )
  }
  as.integer(v)
}

new_shape <- function(dims) {
  structure(as.integer(dims), class = "depthwise_shape")
}

#' @export
format.depthwise_shape <- function(x, ...) {
  v <- unclass(x)
  paste0("shape(", paste(ifelse(is.na(v), "NA", as.character(v)), collapse = ", "), ")")
}

#' @export
print.depthwise_shape <- function(x, ...) {
  cat(format(x), "\n", sep = "")
  invisible(x)
}

#' @export
as.character.depthwise_shape <- function(x, ...) format(x)

#' @export
`[.depthwise_shape` <- function(x, i) new_shape(unclass(x)[i])

# The dims an R array (or shape-like value) describes, as an integer vector.
as_dims <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (inherits(x, "depthwise_shape")) return(unclass(x))
  tryCatch(
    unclass(shape(x)),
    depthwise_error = function(e) {
      abort_depthwise(
        c(sprintf("`%s` must be a shape: whole numbers or NA", arg),
          x = sprintf("You supplied %s.", format_value(x))),
        "value", call = call
      )
    }
  )
}

# Human form used in messages: (4, 10, 10, 12), like Keras' tuples.
# Long shapes are shortened so that a message stays readable.
format_dims <- function(dims) {
  text <- ifelse(is.na(dims), "None", dims)
  if (length(text) > 12L) {
    text <- c(text[1:5], sprintf("... (%d sizes) ...", length(text)), text[length(text) - 4:0])
  }
  paste0("(", paste(text, collapse = ", "), ")")
}
