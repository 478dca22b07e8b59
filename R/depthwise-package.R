#' depthwise: Keras-style depthwise 2D convolution in native code
#'
#' `layer_depthwise_conv_2d()` with the arguments, defaults, numbers and
#' errors of Keras 3, computed by C++ kernels on R's double arrays. No Python
#' or TensorFlow is involved.
#'
#' @keywords internal
"_PACKAGE"

#' @useDynLib depthwise, .registration = TRUE
#' @importFrom Rcpp evalCpp
NULL

# Session state that R semantics make necessary: the image data format set
# with config_set_image_data_format() and the per-session layer name counters.
the <- new.env(parent = emptyenv())
the$image_data_format <- NULL
the$name_counts <- list()

#' @importFrom rlang %||%
#' @importFrom utils .DollarNames
NULL
