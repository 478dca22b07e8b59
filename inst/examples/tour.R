# The main job of depthwise, end to end: the seed example, then a tour of
# what the layer does. Run with: Rscript tools/setup.R (which calls this), or
# Rscript -e 'source(system.file("examples", "tour.R", package = "depthwise"))'

library(depthwise)
set.seed(2026)

cat("== The seed example ==\n")
x <- random_uniform(c(4, 10, 10, 12))
y <- x |> layer_depthwise_conv_2d(kernel_size = 3, activation = "relu")
print(shape(y))

cat("\n== A reusable layer: 'same' padding, depth_multiplier 2 ==\n")
layer <- layer_depthwise_conv_2d(kernel_size = c(3, 5), padding = "same", depth_multiplier = 2)
print(layer)
y2 <- layer(x)
print(shape(y2))
print(layer)
w <- get_weights(layer)
cat("kernel dim:", dim(w[[1]]), " bias length:", length(w[[2]]), "\n")

cat("\n== Strides, dilation and channels_first ==\n")
print(shape(layer_depthwise_conv_2d(x, kernel_size = 3, strides = 2, padding = "same")))
print(shape(layer_depthwise_conv_2d(x, kernel_size = 3, dilation_rate = 2)))
xf <- aperm(x, c(1, 4, 2, 3))
print(shape(layer_depthwise_conv_2d(xf, kernel_size = 3, data_format = "channels_first")))

cat("\n== Depthwise means channel by channel ==\n")
# Output channel k depends on input channel k only: change channel 5 and
# only output channel 5 moves.
conv <- layer_depthwise_conv_2d(kernel_size = 3)
a <- conv(x)
x2 <- x
x2[, , , 5] <- 0
b <- conv(x2)
changed <- which(apply(a != b, 4, any))
cat("output channels changed after editing input channel 5:", changed, "\n")

cat("\n== Same numbers as the formula ==\n")
k <- get_weights(conv)[[1]]
manual <- sum(x[1, 1:3, 1:3, 7] * k[, , 7, 1])
cat(sprintf("y[1, 1, 1, 7] = %.12f, by hand = %.12f\n", a[1, 1, 1, 7], manual))

cat("\n== A sequential model, keras3 style ==\n")
model <- keras_model_sequential(input_shape = c(10, 10, 12)) |>
  layer_depthwise_conv_2d(kernel_size = 3, activation = "relu") |>
  layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2, padding = "same")
summary(model)
print(shape(predict(model, x, batch_size = 2, verbose = 0)))
config <- get_config(model)
copy <- from_config(config)
set_weights(copy, get_weights(model))
cat("from_config() copy gives identical output:", identical(copy(x), model(x)), "\n")

cat("\n== A clear error for a common mistake ==\n")
msg <- tryCatch(layer_depthwise_conv_2d(x, kernel_size = 3, strides = 2, dilation_rate = 2),
                depthwise_error = function(e) conditionMessage(e))
cat(msg, "\n")

cat("\n== Threads ==\n")
cat("get_depthwise_threads():", get_depthwise_threads(), "\n")
