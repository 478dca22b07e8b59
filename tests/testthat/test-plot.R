# Draws `code` into a fresh PNG file and returns list(value, path). The file
# must exist and be larger than a blank page of the same size: png() writes
# nothing unless something was drawn.
render_png <- function(code, width = 700, height = 450) {
  skip_if_not(capabilities("png"), "no PNG device")
  blank <- tempfile(fileext = ".png")
  grDevices::png(blank, width = width, height = height)
  graphics::par(mar = c(0, 0, 0, 0))
  graphics::plot.new()
  grDevices::dev.off()
  path <- tempfile(fileext = ".png")
  grDevices::png(path, width = width, height = height)
  dev <- grDevices::dev.cur()
  value <- tryCatch(withVisible(code), finally = grDevices::dev.off(dev))
  expect_true(file.exists(path))
  expect_gt(file.size(path), 2 * file.size(blank))
  list(value = value$value, visible = value$visible, path = path)
}

# volcano as a one-channel image and a layer with blur / Sobel kernels.
volcano_layer <- function(data_format = "channels_last") {
  blur <- matrix(1 / 9, 3, 3)
  sobel_h <- rbind(c(1, 2, 1), c(0, 0, 0), c(-1, -2, -1))
  layer <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 3, use_bias = FALSE,
                                   data_format = data_format)
  build(layer, if (data_format == "channels_last") shape(NA, 87, 61, 1) else shape(NA, 1, 87, 61))
  set_weights(layer, list(array(c(blur, sobel_h, t(sobel_h)), c(3, 3, 1, 3))))
  keep_last_output(layer)
  layer
}

test_that("the grid uses the two closest factors, fewer rows than columns", {
  grids <- t(vapply(c(1, 2, 6, 8, 12, 13, 16, 24, 32, 512), tile_grid, integer(2)))
  expect_equal(unname(grids), cbind(c(1, 1, 2, 2, 3, 1, 4, 4, 4, 16),
                                    c(1, 2, 3, 4, 4, 13, 4, 6, 8, 32)))
  expect_equal(unname(tile_grid(12, "row")), c(1, 12))
})

test_that("tiles are drawn the way images are stored: row 1 at the top, column 1 left", {
  m <- matrix(1:6, 2, 3)  # 2 rows, 3 columns
  z <- tile_z(m)
  # image(z) puts z[i, j] at x = i (left to right), y = j (bottom to top)
  expect_identical(dim(z), c(3L, 2L))
  expect_identical(z[1, 2], m[1, 1])  # left, top
  expect_identical(z[3, 2], m[1, 3])  # right, top
  expect_identical(z[1, 1], m[2, 1])  # left, bottom
})

test_that("plot_feature_maps() draws one sample's channels and returns them invisibly", {
  x <- random_uniform(c(2, 6, 9, 4), seed = 3)
  out <- render_png(plot_feature_maps(x, sample = 2))
  expect_false(out$visible)
  tiles <- out$value
  expect_s3_class(tiles, "depthwise_tiles")
  expect_identical(tiles$maps, x[2, , , ])
  expect_identical(tiles$channel, 1:4)
  expect_identical(tiles$input_channel, rep(NA_integer_, 4))
  expect_identical(c(tiles$nrow, tiles$ncol), c(2L, 2L))
  per_map <- t(apply(x[2, , , ], 3, range))
  expect_equal(tiles$zlim, per_map)
})

test_that("channels_first arrays, 3D samples and matrices give the same maps", {
  x <- random_uniform(c(1, 5, 7, 3), seed = 4)
  last <- render_png(plot_feature_maps(x, data_format = "channels_last"))$value
  first <- render_png(plot_feature_maps(aperm(x, c(1, 4, 2, 3)), data_format = "channels_first"))$value
  expect_identical(first$maps, last$maps)
  one <- render_png(plot_feature_maps(x[1, , , ], data_format = "channels_last"))$value
  expect_identical(one$maps, last$maps)
  mat <- render_png(plot_feature_maps(x[1, , , 2]))$value
  expect_identical(mat$maps[, , 1], x[1, , , 2])
})

test_that("the default data format comes from config_image_data_format()", {
  x <- random_uniform(c(1, 3, 5, 7), seed = 5)  # channels_first: 3 channels of 5 x 7
  old <- config_set_image_data_format("channels_first")
  on.exit(config_set_image_data_format(old))
  tiles <- render_png(plot_feature_maps(x))$value
  expect_identical(dim(tiles$maps), c(5L, 7L, 3L))
})

test_that("channels, layout and global normalisation are honoured", {
  x <- random_normal(c(1, 4, 4, 6), seed = 6)
  tiles <- render_png(plot_feature_maps(x, channels = c(6, 2, 3), layout = "row",
                                        normalise = "global"))$value
  expect_identical(tiles$channel, c(6L, 2L, 3L))
  expect_identical(tiles$maps, x[1, , , c(6, 2, 3)])
  expect_identical(c(tiles$nrow, tiles$ncol), c(1L, 3L))
  expect_equal(tiles$zlim, matrix(range(x[1, , , c(6, 2, 3)]), 3, 2, byrow = TRUE))
})

test_that("a layer's output is titled with its source input channel ceiling(j / M)", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 3)
  keep_last_output(layer)
  y <- layer(random_uniform(c(1, 8, 8, 4), seed = 7))
  tiles <- render_png(plot_feature_maps(layer))$value
  expect_identical(tiles$maps, y[1, , , ])
  expect_identical(tiles$input_channel, as.integer(ceiling(1:12 / 3)))
  expect_identical(tiles$multiplier, rep(1:3, 4))
  expect_identical(c(tiles$nrow, tiles$ncol), c(3L, 4L))
  # the same from the bare array with the multiplier given
  bare <- render_png(plot_feature_maps(y, depth_multiplier = 3))$value
  expect_identical(bare$input_channel, tiles$input_channel)
})

test_that("plot(layer) draws the kept output, else the kernels", {
  layer <- volcano_layer()
  k <- render_png(plot(layer))$value
  expect_identical(k$what, "kernels")
  y <- layer(array(datasets::volcano, c(1, 87, 61, 1)))
  out <- render_png(plot(layer), width = 900, height = 450)
  expect_false(out$visible)
  expect_identical(out$value$what, "feature maps")
  expect_identical(out$value$maps, y[1, , , ])
  expect_identical(out$value$input_channel, c(1L, 1L, 1L))
  expect_identical(render_png(plot(layer, what = "kernels"))$value$what, "kernels")
})

test_that("a channels_first layer is plotted in its own format", {
  layer <- volcano_layer("channels_first")
  y <- layer(array(datasets::volcano, c(1, 1, 87, 61)))
  tiles <- render_png(plot(layer))$value
  expect_identical(dim(tiles$maps), c(85L, 59L, 3L))
  expect_identical(tiles$maps[, , 2], y[1, 2, , ])
  # the blur map is the local mean of volcano, the right way round
  expect_equal(tiles$maps[1, 1, 1], mean(datasets::volcano[1:3, 1:3]))
})

test_that("plot_kernels() uses one colour scale centred at 0", {
  layer <- layer_depthwise_conv_2d(kernel_size = c(3, 5), depth_multiplier = 2)
  build(layer, shape(NA, 10, 10, 3))
  kernel <- get_weights(layer)[[1]]
  out <- render_png(plot_kernels(layer))
  expect_false(out$visible)
  tiles <- out$value
  a <- max(abs(kernel))
  expect_equal(tiles$zlim, matrix(c(-a, a), 6, 2, byrow = TRUE))
  expect_identical(tiles$input_channel, rep(1:3, each = 2))
  expect_identical(tiles$multiplier, rep(1:2, 3))
  expect_identical(tiles$channel, 1:6)
  expect_identical(tiles$maps[, , 4], kernel[, , 2, 2])
  part <- render_png(plot_kernels(kernel, channels = 3))$value
  expect_identical(part$channel, 5:6)
  expect_equal(part$zlim[1, ], c(-1, 1) * max(abs(kernel[, , 3, ])))
})

test_that("titles and image() arguments can be given", {
  x <- random_uniform(c(1, 5, 5, 2), seed = 11)
  render_png(plot_feature_maps(x, main = "two maps", useRaster = FALSE))
  render_png(plot_feature_maps(x, main = NA, col = grDevices::gray.colors(16)))
  render_png(plot_kernels(array(1:18 - 9, c(3, 3, 2, 1)), main = "", layout = "row"))
  expect_error(plot_feature_maps(x, main = c("a", "b")), class = "depthwise_error_value")
  expect_error(plot_kernels(array(0, c(3, 3, 1, 1)), main = 1), class = "depthwise_error_type")
})

test_that("plots work on a pdf device and leave the graphics parameters alone", {
  path <- tempfile(fileext = ".pdf")
  grDevices::pdf(path, width = 7, height = 4)
  before <- graphics::par(c("mfrow", "mar", "oma", "cex"))
  plot_feature_maps(random_uniform(c(1, 5, 5, 6), seed = 8), normalise = "global")
  plot_kernels(array(seq(-1, 1, length.out = 18), c(3, 3, 2, 1)))
  after <- graphics::par(c("mfrow", "mar", "oma", "cex"))
  grDevices::dev.off()
  expect_identical(after, before)
  expect_gt(file.size(path), 3000)
})

test_that("hundreds of channels, a tiny device, constant and non-finite maps all draw", {
  render_png(plot_feature_maps(random_uniform(c(1, 6, 6, 512), seed = 9)), width = 300, height = 200)
  render_png(plot_feature_maps(random_uniform(c(1, 4, 4, 8), seed = 9), normalise = "global"),
             width = 160, height = 120)
  tiles <- render_png(plot_feature_maps(array(3, c(1, 4, 4, 2))))$value
  expect_equal(tiles$zlim, matrix(c(2.5, 3.5), 2, 2, byrow = TRUE))
  odd <- array(c(NA, Inf, -Inf, 1:13), c(1, 4, 4, 1))
  tiles <- render_png(plot_feature_maps(odd))$value
  expect_equal(tiles$zlim, matrix(c(1, 13), 1))
})

test_that("the drawn object prints as a short table", {
  layer <- volcano_layer()
  layer(array(datasets::volcano, c(1, 87, 61, 1)))
  grDevices::pdf(NULL)
  tiles <- plot(layer)
  grDevices::dev.off()
  expect_snapshot(print(tiles))
  grDevices::pdf(NULL)
  many <- plot_feature_maps(array(1:64, c(1, 2, 2, 16)))
  grDevices::dev.off()
  expect_output(print(many), "and 6 more tiles")
})

test_that("plotting mistakes give classed, explained errors", {
  x <- random_uniform(c(2, 5, 5, 4), seed = 10)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  layer <- layer_depthwise_conv_2d(kernel_size = 3, name = "dw_plot")
  expect_error(plot_kernels(layer), class = "depthwise_error_state")
  expect_snapshot(plot_kernels(layer), error = TRUE)
  layer(x)
  expect_error(plot(layer, what = "output"), class = "depthwise_error_state")
  expect_snapshot(plot_feature_maps(layer), error = TRUE)
  expect_error(plot_feature_maps(layer, depth_multiplier = 2), class = "depthwise_error_incompatible")
  expect_snapshot(plot_feature_maps(x, sample = 3), error = TRUE)
  expect_error(plot_feature_maps(x, sample = 0), class = "depthwise_error_value")
  expect_snapshot(plot_feature_maps(x, channels = c(1, 5)), error = TRUE)
  expect_error(plot_feature_maps(x, channels = "1"), class = "depthwise_error_type")
  expect_snapshot(plot_feature_maps(x, depth_multiplier = 3), error = TRUE)
  expect_error(plot_feature_maps(x, layout = "circle"), class = "depthwise_error_value")
  expect_error(plot_feature_maps(x, normalise = "none"), class = "depthwise_error_value")
  expect_error(plot_feature_maps(array(0, c(1, 2, 2, 2, 2))), class = "depthwise_error_shape")
  expect_error(plot_feature_maps(array(0, c(1, 0, 2, 2))), class = "depthwise_error_shape")
  expect_error(plot_feature_maps("x"), class = "depthwise_error_type")
  expect_error(plot_feature_maps(x, col = "not a colour"), class = "depthwise_error_value")
  expect_error(plot_kernels(array(0, c(3, 3, 2))), class = "depthwise_error_shape")
  expect_error(plot(layer, what = "weights"), class = "depthwise_error_value")
})
