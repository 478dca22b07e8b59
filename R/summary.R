#' Summarise a sequential model
#'
#' Prints Keras' table of layers: name and type, output shape and number of
#' parameters, then the total, trainable and non-trainable parameter counts.
#' `print(model)` shows the same. Output shapes show `None` for an unknown
#' batch size and `?` for a layer that is not built yet, as Keras does.
#'
#' @param object,x A model made by [keras_model_sequential()].
#' @param ... Unused.
#' @returns `object`, invisibly.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 10, 12)) |>
#'   layer_depthwise_conv_2d(kernel_size = 3)
#' summary(model)
summary.depthwise_model <- function(object, ...) {
  cat(format_model_summary(object), sep = "\n")
  invisible(object)
}

#' @rdname summary.depthwise_model
#' @export
print.depthwise_model <- function(x, ...) summary.depthwise_model(x, ...)

format_model_summary <- function(model) {
  state <- model_state(model)
  rows <- lapply(state$layers, summary_row)
  dims <- state$input_shape
  # Output shapes follow the declared input when the model knows it.
  if (!is.null(dims)) {
    for (k in seq_along(state$layers)) {
      dims <- compute_output_shape(state$layers[[k]], dims)
      rows[[k]]$shape <- format_dims(dims)
    }
  }
  col_widths <- c(31L, 22L, 13L)  # Keras' proportions
  box <- box_chars()
  rule <- function(l, m, r, fill) paste0(l, strrep(fill, col_widths[1] + 2), m,
                                         strrep(fill, col_widths[2] + 2), m,
                                         strrep(fill, col_widths[3] + 2), r)
  line <- function(a, b, c, v) {
    paste0(v, " ", formatC(a, width = -col_widths[1]), " ", v, " ",
           formatC(b, width = -col_widths[2]), " ", v, " ",
           formatC(c, width = col_widths[3]), " ", v)
  }
  body <- unlist(lapply(rows, function(r) {
    label <- wrap_label(paste0(r$name, " (", r$type, ")"), col_widths[1])
    first <- line(label[1], r$shape, r$params, box$v)
    rest <- vapply(label[-1], function(l) line(l, "", "", box$v), "")
    c(first, rest)
  }))
  params <- vapply(rows, function(r) r$count, 1)
  trainable <- vapply(rows, function(r) if (r$trainable) r$count else 0, 1)
  c(
    sprintf('Model: "%s"', state$name),
    rule(box$tl, box$tm, box$tr, box$h2),
    line("Layer (type)", "Output Shape", "Param #", box$v2),
    rule(box$ml, box$mm, box$mr, box$h2b),
    body,
    rule(box$bl, box$bm, box$br, box$h),
    sprintf(" Total params: %s", format_params(sum(params))),
    sprintf(" Trainable params: %s", format_params(sum(trainable))),
    sprintf(" Non-trainable params: %s", format_params(sum(params) - sum(trainable)))
  )
}

summary_row <- function(layer) {
  state <- layer_state(layer)
  built <- state$built
  count <- if (built) count_layer_params(state) else 0
  output_shape <- state$call_memo$output_shape
  list(
    name = state$config$name,
    type = "DepthwiseConv2D",
    shape = if (!is.null(output_shape)) format_dims(c(NA, output_shape[-1])) else "?",
    params = if (built) format(count, big.mark = ",") else "0 (unbuilt)",
    count = count,
    trainable = isTRUE(state$config$trainable)
  )
}

wrap_label <- function(text, width) {
  if (nchar(text) <= width) return(text)
  parts <- strsplit(text, " (", fixed = TRUE)[[1]]
  c(substr(parts[1], 1, width), substr(paste0("(", parts[2]), 1, width))
}

# Weights are stored as doubles: 8 bytes each.
format_params <- function(n) {
  bytes <- n * 8
  unit <- if (bytes >= 2^30) c(2^30, "GB") else if (bytes >= 2^20) c(2^20, "MB") else
    if (bytes >= 2^10) c(2^10, "KB") else c(1, "B")
  sprintf("%s (%.2f %s)", format(n, big.mark = ",", scientific = FALSE),
          bytes / as.numeric(unit[1]), unit[2])
}

# Keras' box-drawing table where the console can show it, ASCII elsewhere
# (the `cli.unicode` option overrides, as for other r-lib output).
box_chars <- function() {
  if (isTRUE(getOption("cli.unicode", l10n_info()$`UTF-8`))) {
    list(tl = "\u250f", tm = "\u2533", tr = "\u2513", h2 = "\u2501", v2 = "\u2503",
         ml = "\u2521", mm = "\u2547", mr = "\u2529", h2b = "\u2501",
         v = "\u2502", bl = "\u2514", bm = "\u2534", br = "\u2518", h = "\u2500")
  } else {
    list(tl = "+", tm = "+", tr = "+", h2 = "=", v2 = "|", ml = "+", mm = "+", mr = "+",
         h2b = "=", v = "|", bl = "+", bm = "+", br = "+", h = "-")
  }
}
