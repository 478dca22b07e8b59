# Draws the README picture, man/figures/README-feature-maps.png, with the
# code the README shows. Run from the repository root with the package
# installed: Rscript tools/readme-figure.R

library(depthwise)

volcano_img <- array(datasets::volcano, c(1, 87, 61, 1))   # (batch, rows, cols, channels)
blur <- matrix(1 / 9, 3, 3)
sobel <- rbind(c(1, 2, 1), c(0, 0, 0), c(-1, -2, -1))
edges <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 3, use_bias = FALSE,
                                 name = "edges")
build(edges, shape(NA, 87, 61, 1))
set_weights(edges, list(array(c(blur, sobel, t(sobel)), c(3, 3, 1, 3))))
keep_last_output(edges)
y <- edges(volcano_img)

dir.create("man/figures", showWarnings = FALSE, recursive = TRUE)
png("man/figures/README-feature-maps.png", width = 800, height = 420, res = 100)
plot(edges)
invisible(dev.off())
