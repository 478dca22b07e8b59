# Activation handling. A name is resolved to the C++ kernels' activation code
# (fused into the forward pass); an R function is applied to the finished
# output array in R.

activation_aliases <- c(swish = "silu", hard_swish = "hard_silu")

# Valid names in the order users read them in an error message.
activation_choices <- function() {
  c(dw_activation_names(), names(activation_aliases))
}

# -> list(name, code, fn): `name` is what get_config() reports (NULL for no
# activation, "custom" for an R function), `code` the kernel's activation
# code (0 = linear), `fn` an R function to apply afterwards or NULL.
resolve_activation <- function(activation, arg = "activation", call = rlang::caller_env()) {
  if (is.null(activation)) return(list(name = "linear", code = 0L, fn = NULL))
  if (is.function(activation)) return(list(name = "custom", code = 0L, fn = activation))
  if (!is.character(activation) || length(activation) != 1L || is.na(activation)) {
    abort_depthwise(
      c(sprintf("`%s` must be NULL, an activation name or an R function", arg),
        x = sprintf("You supplied %s.", format_value(activation))),
      "type", call = call
    )
  }
  name <- activation
  canonical <- if (name %in% names(activation_aliases)) activation_aliases[[name]] else name
  code <- match(canonical, dw_activation_names()) - 1L
  if (is.na(code)) {
    abort_depthwise(
      c(sprintf("`%s` must be one of the Keras activation names or an R function", arg),
        x = sprintf("Unknown activation %s.", format_value(activation)),
        i = paste("Valid names:", paste0('"', activation_choices(), '"', collapse = ", "))),
      "value", call = call
    )
  }
  list(name = name, code = code, fn = NULL)
}

# Applies an R-function activation to a layer output, checking it kept the shape.
apply_r_activation <- function(fn, y, call = rlang::caller_env()) {
  out <- call_user_function(fn, y, what = "`activation` function", call = call)
  if (!(is.numeric(out) || is.logical(out)) || length(out) != length(y)) {
    abort_depthwise(
      c("The `activation` function must return a numeric array of the same size as its input",
        x = sprintf("It returned %s for an input of dim %s.", format_value(out), paste(dim(y), collapse = "x"))),
      "value", call = call
    )
  }
  array(as.double(out), dim(y))
}
