#' Plot the feature maps of an array or of a layer's output
#'
#' Draws every channel of one sample as a heatmap tile, the way TensorSpace
#' shows a layer's output: tiles laid out in a grid of the two closest factors
#' of the number of channels (or in one row), each stretched over the whole
#' colour scale from its own minimum to its own maximum, and each titled with
#' its channel index. When the depth multiplier `M` of the layer that produced
#' the array is known, each title also names the input channel the map comes
#' from: output channel `j` depends on input channel `ceiling(j / M)` only.
#'
#' Images are drawn the way they are stored: row 1 at the top, column 1 on
#' the left, with square pixels. Drawing uses base graphics on the current
#' device, so [grDevices::png()], [grDevices::pdf()] and the other devices
#' work as usual; the graphics parameters are restored afterwards. Missing
#' values are left blank, and infinite values get the colour at that end of
#' the scale (the scale itself comes from the finite values).
#'
#' For a layer, `plot_feature_maps(layer)` draws `layer$last_output` (kept
#' only after [keep_last_output()]) with the layer's own data format and depth
#' multiplier; `data_format` and `depth_multiplier` must then be left `NULL`.
#'
#' # Input shape
#' `x` can be a 4D array `(batch, rows, cols, channels)` (`channels_last`) or
#' `(batch, channels, rows, cols)` (`channels_first`); a 3D array holding one
#' sample without the batch axis, `(rows, cols, channels)` or `(channels,
#' rows, cols)`; or a matrix `(rows, cols)`, drawn as a single map.
#'
#' @param x What to draw: a numeric array (see *Input shape*), or a layer made
#'   by [layer_depthwise_conv_2d()] whose last output was kept with
#'   [keep_last_output()].
#' @param sample Which sample (index along the batch axis) to draw.
#' @param channels `NULL` for all channels, or the indices of the channels to
#'   draw, in the order to draw them.
#' @param layout `"grid"`: tiles in `a` rows and `b` columns, where `a <= b`
#'   are the two factors of the number of tiles closest to each other
#'   (TensorSpace's rule; a prime number of tiles gives one row). `"row"`: all
#'   tiles in one row.
#' @param normalise `"per_map"`: each tile uses the whole colour scale, from
#'   its own minimum to its own maximum, so the pattern of every map is
#'   visible whatever its range (TensorSpace's choice). `"global"`: one scale
#'   from the smallest to the largest value of all tiles drawn, shown in a
#'   colour key, so that tiles can be compared with each other.
#' @param data_format For an array: `"channels_last"` or `"channels_first"`
#'   (any case); `NULL` means [config_image_data_format()]. For a layer:
#'   `NULL` (the layer's own format is used).
#' @param depth_multiplier For an array: `NULL`, or the depth multiplier of
#'   the depthwise layer that produced it, to title each map with its source
#'   input channel. For a layer: `NULL` (the layer's own is used).
#' @param col The colours of the scale, low to high. `NULL` means
#'   `grDevices::hcl.colors(64, "viridis")`.
#' @param main The overall title: `NULL` for an automatic one, `NA` for none,
#'   or a string.
#' @param ... Further arguments passed to [graphics::image()] for every tile,
#'   such as `useRaster`.
#'
#' @returns Invisibly, what was drawn: an object of class `depthwise_tiles`,
#'   a list with `maps` (an array `(rows, cols, tiles)` of the values drawn,
#'   row 1 at the top), `channel` (the channel index of each tile),
#'   `input_channel` (its source input channel, or `NA` when the depth
#'   multiplier is unknown), `multiplier` (which of the `M` kernels of that
#'   input channel made it, or `NA`), `zlim` (a `tiles x 2` matrix: the values
#'   mapped to the ends of the colour scale), `nrow` and `ncol` (the grid),
#'   `sample` and `what` (`"feature maps"`). It prints as a short table.
#' @seealso [plot_kernels()] for the kernels; [plot.depthwise_layer()].
#' @export
#' @examples
#' # volcano as a one-channel image: (batch, rows, cols, channels)
#' img <- array(datasets::volcano, c(1, 87, 61, 1))
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 3,
#'                                  use_bias = FALSE)
#' keep_last_output(layer)
#' y <- layer(img)
#' plot_feature_maps(layer)
#'
#' # the same output as a bare array, with the multiplier given
#' maps <- plot_feature_maps(y, depth_multiplier = 3, normalise = "global")
#' maps
plot_feature_maps <- function(x, sample = 1, channels = NULL, layout = c("grid", "row"),
                              normalise = c("per_map", "global"), data_format = NULL,
                              depth_multiplier = NULL, col = NULL, main = NULL, ...) {
  layout <- check_choice(layout[1], c("grid", "row"), arg = "layout")
  normalise <- check_choice(normalise[1], c("per_map", "global"), arg = "normalise")
  sample <- check_count(sample)
  col <- check_colours(col %||% grDevices::hcl.colors(64, "viridis"))
  label <- NULL
  main <- check_main(main)
  if (inherits(x, "depthwise_layer")) {
    given <- c(data_format = !is.null(data_format), depth_multiplier = !is.null(depth_multiplier))
    if (any(given)) {
      abort_depthwise(
        c(sprintf("`%s` must be NULL when `x` is a layer", names(given)[given][1]),
          i = "The layer's own data format and depth multiplier are used."),
        "incompatible"
      )
    }
    state <- layer_state(x)
    y <- state$last_output
    if (is.null(y)) abort_no_output(state)
    data_format <- state$config$data_format
    depth_multiplier <- state$config$depth_multiplier
    label <- state$config$name
  } else {
    y <- as_double_array(x, arg = "x")
    data_format <- if (is.null(data_format)) config_image_data_format() else
      check_choice(data_format, c("channels_last", "channels_first"))
    if (!is.null(depth_multiplier)) depth_multiplier <- check_count(depth_multiplier)
  }
  maps <- sample_maps(y, sample, data_format)
  n_channels <- dim(maps)[3]
  channels <- check_channels(channels, n_channels)
  input_channel <- multiplier <- rep(NA_integer_, length(channels))
  if (!is.null(depth_multiplier)) {
    if (n_channels %% depth_multiplier != 0L) {
      abort_depthwise(
        c("`depth_multiplier` must divide the number of channels",
          x = sprintf("The array has %d channels; you supplied depth_multiplier = %d.",
                      n_channels, depth_multiplier),
          i = "A depthwise layer makes channels * depth_multiplier output channels."),
        "incompatible"
      )
    }
    input_channel <- as.integer(ceiling(channels / depth_multiplier))
    multiplier <- as.integer((channels - 1L) %% depth_multiplier + 1L)
  }
  maps <- maps[, , channels, drop = FALSE]
  zlim <- tile_limits(maps, normalise)
  titles <- if (is.null(depth_multiplier)) sprintf("ch %d", channels) else
    sprintf("ch %d <- in %d", channels, input_channel)
  grid <- tile_grid(length(channels), layout)
  if (is.null(main)) {
    main <- sprintf("%sample %d: %d x %d, %s",
                    if (is.null(label)) "S" else paste0(label, " output, s"),
                    sample, dim(maps)[1], dim(maps)[2],
                    if (normalise == "per_map") "each map on its own scale" else "one scale")
  }
  draw_tiles(maps, zlim, titles, grid, col, main = main, key = normalise == "global", ...)
  invisible(new_tiles(maps, channels, input_channel, multiplier, zlim, grid, sample, "feature maps"))
}

#' Plot the kernels of a depthwise layer
#'
#' Draws the depthwise kernel `[, , c, m]` of every input channel `c` and
#' multiplier `m` as a small tile, in output channel order (tile `(c - 1) * M
#' + m` makes output channel `(c - 1) * M + m`), titled with its index in the
#' kernel array. All tiles share one diverging colour scale centred at 0
#' (blue negative, pale grey at 0, red positive), from `-max(abs(kernel))` to
#' `max(abs(kernel))` over the tiles drawn, with a colour key.
#'
#' @param layer A built layer made by [layer_depthwise_conv_2d()], or a
#'   depthwise kernel array `(kernel_rows, kernel_cols, channels,
#'   depth_multiplier)` such as `get_weights(layer)[[1]]`.
#' @param channels `NULL` for all input channels, or the indices of the
#'   input channels whose kernels to draw.
#' @param col The colours of the scale, low to high; the middle one is drawn
#'   for 0. `NULL` means `grDevices::hcl.colors(101, "Blue-Red 3")`.
#' @inheritParams plot_feature_maps
#' @returns Invisibly, what was drawn: an object of class `depthwise_tiles`
#'   as for [plot_feature_maps()], with `maps` the kernels drawn (an array
#'   `(kernel_rows, kernel_cols, tiles)`), `channel` the output channel each
#'   makes, `input_channel` and `multiplier` the kernel's indices `c` and `m`,
#'   the shared `zlim` `c(-a, a)` in every row, and `what` (`"kernels"`).
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 5, depth_multiplier = 2)
#' build(layer, shape(NA, 32, 32, 3))
#' plot_kernels(layer)
plot_kernels <- function(layer, channels = NULL, layout = c("grid", "row"), col = NULL,
                         main = NULL, ...) {
  layout <- check_choice(layout[1], c("grid", "row"), arg = "layout")
  col <- check_colours(col %||% grDevices::hcl.colors(101, "Blue-Red 3"))
  main <- check_main(main)
  label <- NULL
  if (inherits(layer, "depthwise_layer")) {
    state <- layer_state(layer)
    check_built(state, "plot")
    kernel <- state$kernel
    label <- state$config$name
  } else {
    kernel <- as_double_array(layer, arg = "layer")
    if (length(dim(kernel)) != 4L || any(dim(kernel) < 1L)) {
      abort_depthwise(
        c("`layer` must be a layer or a 4D kernel array (kernel_rows, kernel_cols, channels, depth_multiplier)",
          x = sprintf("You supplied %s.", format_value(layer))),
        "shape"
      )
    }
  }
  dims <- dim(kernel)
  inputs <- check_channels(channels, dims[3])
  m_count <- dims[4]
  input_channel <- rep(inputs, each = m_count)
  multiplier <- rep(seq_len(m_count), times = length(inputs))
  maps <- array(0, c(dims[1:2], length(input_channel)))
  for (i in seq_along(input_channel)) maps[, , i] <- kernel[, , input_channel[i], multiplier[i]]
  finite <- maps[is.finite(maps)]
  a <- if (length(finite)) max(abs(finite)) else 0
  if (a == 0) a <- 1
  zlim <- matrix(c(-a, a), length(input_channel), 2, byrow = TRUE)
  titles <- sprintf("[, , %d, %d]", input_channel, multiplier)
  grid <- tile_grid(length(input_channel), layout)
  if (is.null(main)) {
    main <- sprintf("%s%d x %d depthwise kernels, depth_multiplier %d",
                    if (is.null(label)) "" else paste0(label, ": "), dims[1], dims[2], m_count)
  }
  draw_tiles(maps, zlim, titles, grid, col, main = main, key = TRUE, ...)
  channel <- as.integer((input_channel - 1L) * m_count + multiplier)
  invisible(new_tiles(maps, channel, input_channel, multiplier, zlim, grid, NA_integer_, "kernels"))
}

#' Plot a depthwise layer: its last output or its kernels
#'
#' `plot(layer)` draws the layer's last output with [plot_feature_maps()]
#' when it was kept (see [keep_last_output()]), and its kernels with
#' [plot_kernels()] otherwise.
#'
#' @param x A layer made by [layer_depthwise_conv_2d()].
#' @param what `NULL` (the output if one was kept, else the kernels),
#'   `"output"` or `"kernels"`.
#' @param ... Passed to [plot_feature_maps()] or [plot_kernels()].
#' @returns Invisibly, the `depthwise_tiles` object the plotting function
#'   returns.
#' @export
#' @examples
#' layer <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2)
#' keep_last_output(layer)
#' y <- layer(random_uniform(c(1, 16, 16, 2), seed = 1))
#' plot(layer)
#' plot(layer, what = "kernels")
plot.depthwise_layer <- function(x, what = NULL, ...) {
  if (!is.null(what)) what <- check_choice(what, c("output", "kernels"))
  state <- layer_state(x)
  what <- what %||% if (is.null(state$last_output)) "kernels" else "output"
  if (what == "output") plot_feature_maps(x, ...) else plot_kernels(x, ...)
}

abort_no_output <- function(state, call = rlang::caller_env()) {
  abort_depthwise(
    c(sprintf("Layer \"%s\" has no kept output to plot", state$config$name),
      i = "Call `keep_last_output(layer)` before calling the layer on an array.",
      i = "Or plot its kernels: `plot_kernels(layer)`."),
    "state", call = call
  )
}

# The maps of one sample as an array (rows, cols, channels), row 1 on top.
sample_maps <- function(y, sample, data_format, call = rlang::caller_env()) {
  dims <- dim(y)
  rank <- length(dims)
  if (!rank %in% 2:4 || any(dims < 1L)) {
    abort_depthwise(
      c("`x` must be a non-empty matrix, 3D or 4D array",
        x = sprintf("You supplied %s.", format_value(y)),
        i = "A 4D array is (batch, rows, cols, channels) for channels_last, (batch, channels, rows, cols) for channels_first."),
      "shape", call = call
    )
  }
  batch <- if (rank == 4L) dims[1] else 1L
  if (sample > batch) {
    abort_depthwise(
      c(sprintf("`sample` must be at most %d, the number of samples in `x`", batch),
        x = sprintf("You supplied %d.", sample)),
      "value", call = call
    )
  }
  if (rank == 2L) return(array(y, c(dims, 1L)))
  one <- if (rank == 4L) array(y[sample, , , ], dims[-1]) else y
  if (data_format == "channels_first") one <- aperm(one, c(2L, 3L, 1L))
  one
}

check_channels <- function(channels, n, arg = "channels", call = rlang::caller_env()) {
  if (is.null(channels)) return(seq_len(n))
  what <- sprintf("`%s` must be NULL or channel indices between 1 and %d", arg, n)
  if (!is.numeric(channels)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(channels))), "type", call = call)
  }
  if (!length(channels) || !all(vapply(channels, is_whole, TRUE)) || any(channels < 1 | channels > n)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(channels))), "value", call = call)
  }
  as.integer(channels)
}

check_colours <- function(col, arg = "col", call = rlang::caller_env()) {
  ok <- (is.character(col) || is.numeric(col)) && length(col) >= 2L && !anyNA(col) &&
    !inherits(tryCatch(grDevices::col2rgb(col), error = function(e) e), "error")
  if (!ok) {
    abort_depthwise(
      c(sprintf("`%s` must be a vector of at least two colours", arg),
        x = sprintf("You supplied %s.", format_value(col))),
      if (is.character(col) || is.numeric(col)) "value" else "type", call = call
    )
  }
  col
}

check_main <- function(main, call = rlang::caller_env()) {
  ok <- is.null(main) || length(main) == 1L && (is.character(main) || identical(main, NA))
  if (!ok) {
    abort_depthwise(
      c("`main` must be NULL, NA or a single string", x = sprintf("You supplied %s.", format_value(main))),
      if (is.character(main) || is.logical(main)) "value" else "type", call = call
    )
  }
  main
}

# Rows and columns of the tile grid: the two factors of n closest to each
# other (fewer rows than columns), or one row.
tile_grid <- function(n, layout = "grid") {
  if (layout == "row") return(c(nrow = 1L, ncol = as.integer(n)))
  divisors <- which(n %% seq_len(floor(sqrt(n))) == 0L)
  rows <- max(divisors)
  c(nrow = as.integer(rows), ncol = as.integer(n %/% rows))
}

# The value range mapped onto the colour scale, one row per tile.
tile_limits <- function(maps, normalise) {
  spread <- function(v) {
    v <- v[is.finite(v)]
    if (!length(v)) return(c(0, 1))
    r <- range(v)
    if (r[1] == r[2]) r + c(-0.5, 0.5) else r
  }
  k <- dim(maps)[3]
  if (normalise == "global") return(matrix(spread(maps), k, 2, byrow = TRUE))
  t(vapply(seq_len(k), function(i) spread(maps[, , i]), numeric(2)))
}

# image() draws z[i, j] at x = i, y = j, with y pointing up. This turns a map
# stored as an image (row 1 at the top) into that layout.
tile_z <- function(m) t(m[rev(seq_len(nrow(m))), , drop = FALSE])

new_tiles <- function(maps, channel, input_channel, multiplier, zlim, grid, sample, what) {
  dimnames(zlim) <- NULL
  structure(
    list(maps = maps, channel = as.integer(channel), input_channel = as.integer(input_channel),
         multiplier = as.integer(multiplier), zlim = zlim, nrow = grid[["nrow"]],
         ncol = grid[["ncol"]], sample = sample, what = what),
    class = "depthwise_tiles"
  )
}

#' @export
print.depthwise_tiles <- function(x, ..., n = 10L) {
  d <- dim(x$maps)
  cat(sprintf("<depthwise %s> %d tile%s of %d x %d%s, in a %d x %d grid\n", x$what, d[3],
              if (d[3] == 1L) "" else "s", d[1], d[2],
              if (is.na(x$sample)) "" else sprintf(" from sample %d", x$sample), x$nrow, x$ncol))
  shown <- seq_len(min(d[3], n))
  table <- data.frame(channel = x$channel, input_channel = x$input_channel,
                      multiplier = x$multiplier, min = finite_stat(x$maps, min),
                      max = finite_stat(x$maps, max), zlim_low = x$zlim[, 1],
                      zlim_high = x$zlim[, 2])[shown, , drop = FALSE]
  print(table, row.names = FALSE, digits = 4)
  if (d[3] > length(shown)) cat(sprintf("# ... and %d more tiles\n", d[3] - length(shown)))
  invisible(x)
}

# min or max of the finite values of each tile (NA if there are none).
finite_stat <- function(maps, f) {
  apply(maps, 3, function(v) {
    v <- v[is.finite(v)]
    if (length(v)) f(v) else NA_real_
  })
}

# Draws the tiles of `maps` (rows, cols, k) in grid[1] x grid[2] panels on
# the current device, with titles fitted to the panels, an optional overall
# title and an optional colour key for a shared scale.
draw_tiles <- function(maps, zlim, titles, grid, col, main = NULL, key = FALSE, ...) {
  # Restore only what is changed here (mfrow first: it also ends the layout).
  # Restoring every parameter would fail on a small device, where the
  # derived "pin" of the default margins is negative.
  old <- graphics::par(c("mfrow", "oma", "mar", "mgp", "xaxs", "yaxs", "cex"))
  on.exit(graphics::par(old), add = TRUE)
  k <- dim(maps)[3]
  nr <- grid[["nrow"]]
  nc <- grid[["ncol"]]
  has_main <- !is.null(main) && !is.na(main) && nzchar(main)  # checked by check_main()
  panels <- matrix(seq_len(nr * nc), nr, nc, byrow = TRUE)
  panels[panels > k] <- 0L
  din <- graphics::par("din")
  widths <- rep(1, nc)
  key_in <- if (key) min(1.2, din[1] / 4) else 0
  if (key) {
    panels <- cbind(panels, k + 1L)
    widths <- c(widths, graphics::lcm(key_in * 2.54))
  }
  graphics::layout(panels, widths = widths)
  graphics::par(oma = c(0.2, 0.2, if (has_main) 2 else 0.2, 0.2), mgp = c(2, 0.5, 0),
                xaxs = "i", yaxs = "i", cex = 1)
  # Every panel has the same size, so one cex fits every title.
  omi <- graphics::par("omi")
  panel_w <- (din[1] - omi[2] - omi[4] - key_in) / nc
  panel_h <- (din[2] - omi[1] - omi[3]) / nr
  title_in <- min(0.3, panel_h * 0.18)
  graphics::par(mai = c(0.04, 0.04, title_in, 0.04))
  h <- dim(maps)[1]
  w <- dim(maps)[2]
  use_raster <- identical(grDevices::dev.capabilities("rasterImage")$rasterImage, "yes")
  title_cex <- NULL
  for (i in seq_len(k)) {
    graphics::plot.new()
    graphics::plot.window(c(0.5, w + 0.5), c(0.5, h + 0.5), asp = 1)
    m <- maps[, , i]
    dim(m) <- c(h, w)
    m <- pmin(pmax(m, zlim[i, 1]), zlim[i, 2])
    draw_image(seq_len(w), seq_len(h), tile_z(m), zlim[i, ], col, use_raster, ...)
    graphics::rect(0.5, 0.5, w + 0.5, h + 0.5, border = "grey40", lwd = 0.5)
    if (is.null(title_cex)) title_cex <- fit_cex(titles, graphics::par("pin")[1], title_in)
    if (title_cex > 0) {
      # Just above the image, which may not fill its panel (square pixels).
      y_top <- h + 0.5 + graphics::strheight("M", cex = title_cex) * 0.35
      graphics::text((w + 1) / 2, y_top, titles[i], pos = 3, offset = 0.15, cex = title_cex, xpd = NA)
    }
  }
  if (key) draw_key(zlim[1, ], col, key_in, din[2] - omi[1] - omi[3])
  if (has_main) {
    main_cex <- min(1.1, 0.95 * din[1] / graphics::strwidth(main, units = "inches", cex = 1, font = 2))
    graphics::mtext(main, side = 3, line = 0.5, outer = TRUE, cex = main_cex, font = 2)
  }
  invisible(NULL)
}

draw_image <- function(x, y, z, zlim, col, use_raster, ...) {
  args <- list(...)
  if (is.null(args$useRaster)) args$useRaster <- use_raster
  do.call(graphics::image, c(list(x, y, z, zlim = zlim, col = col, add = TRUE), args))
}

# The largest cex (at most 1) at which every title fits the panel width and
# the reserved title height; 0 (no titles) if that would be unreadable.
fit_cex <- function(titles, width_in, height_in) {
  widest <- max(graphics::strwidth(titles, units = "inches", cex = 1))
  tall <- graphics::strheight("M", units = "inches", cex = 1) * 1.6
  cex <- min(1, 0.95 * width_in / widest, height_in / tall)
  if (cex < 0.45) 0 else cex
}

draw_key <- function(zlim, col, width_in, height_in) {
  graphics::par(mai = c(min(0.3, height_in / 8), min(0.1, width_in / 10),
                        min(0.3, height_in / 8), min(0.55, width_in / 2)))
  graphics::plot.new()
  graphics::plot.window(c(0, 1), zlim)
  breaks <- seq(zlim[1], zlim[2], length.out = length(col) + 1L)
  graphics::rect(0, utils::head(breaks, -1), 1, breaks[-1], col = col, border = NA)
  graphics::box(lwd = 0.5)
  graphics::axis(4, las = 1, cex.axis = 0.8, tcl = -0.3)
}
