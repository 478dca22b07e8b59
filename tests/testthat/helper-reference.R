# Oracles for the tests: a plain-R loop over the formula of the depthwise
# convolution, plain-R activations, and a reader for the golden corpus.

ref_axis <- function(n, k, s, d, padding) {
  span <- (k - 1) * d + 1
  if (padding == "same") {
    out <- ceiling(n / s)
    total <- max((out - 1) * s + span - n, 0)
    c(out = out, before = total %/% 2)
  } else {
    c(out = (n - span) %/% s + 1, before = 0)
  }
}

ref_activation <- function(name) {
  sigmoid <- function(v) 1 / (1 + exp(-v))
  softplus <- function(v) log1p(exp(v))
  relu6 <- function(v) pmin(pmax(v, 0), 6)
  hard_sigmoid <- function(v) relu6(v + 3) / 6
  last_axis <- function(f) function(y) {
    d <- dim(y)
    aperm(apply(y, 1:3, f), c(2, 3, 4, 1))
  }
  switch(name %||% "linear",
    linear = identity,
    relu = function(v) pmax(v, 0),
    relu6 = relu6,
    sigmoid = sigmoid,
    hard_sigmoid = hard_sigmoid,
    tanh = tanh,
    elu = function(v) ifelse(v > 0, v, exp(v) - 1),
    selu = function(v) 1.0507009873554805 * ifelse(v > 0, v, 1.6732632423543772 * (exp(v) - 1)),
    softplus = softplus,
    softsign = function(v) v / (1 + abs(v)),
    silu = ,
    swish = function(v) v * sigmoid(v),
    gelu = function(v) v * pnorm(v),
    exponential = exp,
    leaky_relu = function(v) ifelse(v >= 0, v, 0.2 * v),
    mish = function(v) v * tanh(softplus(v)),
    hard_silu = ,
    hard_swish = function(v) v * hard_sigmoid(v),
    softmax = last_axis(function(v) exp(v - max(v)) / sum(exp(v - max(v)))),
    log_softmax = last_axis(function(v) v - max(v) - log(sum(exp(v - max(v))))),
    stop("no reference for activation ", name)
  )
}

# output[n, i, j, (c-1)*M + m] = act(sum_ab x[n, (i-1)*sh + (a-1)*dh + 1 - pt,
#   (j-1)*sw + (b-1)*dw + 1 - pl, c] * kernel[a, b, c, m] + bias[(c-1)*M + m])
ref_depthwise <- function(x, kernel, bias = NULL, strides = c(1, 1), dilation = c(1, 1),
                          padding = "valid", data_format = "channels_last", activation = NULL) {
  strides <- rep_len(strides, 2)
  dilation <- rep_len(dilation, 2)
  if (data_format == "channels_first") x <- aperm(x, c(1, 3, 4, 2))
  N <- dim(x)[1]; H <- dim(x)[2]; W <- dim(x)[3]; C <- dim(x)[4]
  kh <- dim(kernel)[1]; kw <- dim(kernel)[2]; M <- dim(kernel)[4]
  rows <- ref_axis(H, kh, strides[1], dilation[1], padding)
  cols <- ref_axis(W, kw, strides[2], dilation[2], padding)
  y <- array(0, c(N, rows[["out"]], cols[["out"]], C * M))
  for (i in seq_len(rows[["out"]])) for (j in seq_len(cols[["out"]])) {
    for (c in seq_len(C)) for (m in seq_len(M)) {
      acc <- numeric(N)
      for (a in seq_len(kh)) for (b in seq_len(kw)) {
        r <- (i - 1) * strides[1] + (a - 1) * dilation[1] + 1 - rows[["before"]]
        q <- (j - 1) * strides[2] + (b - 1) * dilation[2] + 1 - cols[["before"]]
        if (r >= 1 && r <= H && q >= 1 && q <= W) acc <- acc + x[, r, q, c] * kernel[a, b, c, m]
      }
      oc <- (c - 1) * M + m
      y[, i, j, oc] <- acc + if (is.null(bias)) 0 else bias[oc]
    }
  }
  if (data_format == "channels_first") y <- aperm(y, c(1, 4, 2, 3))
  ref_activation(activation)(y)
}

# The golden corpus copied from ../shared/golden (see golden/README.md).
golden_dir <- function() test_path("golden")

golden_cases <- function() {
  sort(list.dirs(golden_dir(), recursive = FALSE, full.names = TRUE))
}

read_golden_tensor <- function(file, dims) {
  v <- scan(file, what = double(), quiet = TRUE)
  stopifnot(length(v) == prod(dims))
  if (length(dims) == 1L) return(v)
  aperm(array(v, rev(dims)))
}

read_golden_case <- function(dir) {
  meta <- read.dcf(file.path(dir, "case.dcf"))[1, ]
  ints <- function(f) as.integer(strsplit(meta[[f]], ",", fixed = TRUE)[[1]])
  use_bias <- as.logical(meta[["use_bias"]])
  list(
    name = meta[["name"]],
    kernel_size = ints("kernel_size"), strides = ints("strides"), padding = meta[["padding"]],
    depth_multiplier = as.integer(meta[["depth_multiplier"]]), data_format = meta[["data_format"]],
    dilation_rate = ints("dilation_rate"),
    activation = if (meta[["activation"]] == "NULL") NULL else meta[["activation"]],
    use_bias = use_bias,
    x = read_golden_tensor(file.path(dir, "x.txt"), ints("input_shape")),
    kernel = read_golden_tensor(file.path(dir, "kernel.txt"), ints("kernel_shape")),
    bias = if (use_bias) scan(file.path(dir, "bias.txt"), quiet = TRUE) else NULL,
    y = read_golden_tensor(file.path(dir, "y.txt"), ints("output_shape"))
  )
}

# Largest difference relative to the output's scale.
scale_rel_diff <- function(actual, expected) {
  max(abs(actual - expected)) / max(1, max(abs(expected)))
}
