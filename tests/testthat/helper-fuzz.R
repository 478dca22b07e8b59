# A fuzzer for the package's public functions (and its internal C++ entry
# points). It makes calls with bad or extreme arguments and data, and sorts
# each outcome into one of:
#   ok          a valid result (checked, for layer outputs against the
#               reference kernel)
#   classed     an error of class depthwise_error plus a known subclass
#   FAIL ...    anything else: an unclassed error, an invalid result, a
#               warning, or a type/value error that does not name the
#               argument that was given the bad value.
# A crash or a hang cannot be caught inside the process that has it, so
# test-fuzz.R runs fuzz_run() in a child R process (fuzz_in_child()).
#
# Reproducible: case i is generated from set.seed(seed + i) alone, so
# DEPTHWISE_FUZZ_ONLY=i replays one case. Adding a target: write a function
# returning fuzz_case(...) and add it to fuzz_targets() with a weight.

fuzz_ns <- function() asNamespace("depthwise")

# ---- Values -----------------------------------------------------------------

# A value and a short label for reports.
fv <- function(value, label) list(value = value, label = label)

pick <- function(x) x[[sample.int(length(x), 1L)]]

# list(list(list(... 3))) 20000 deep: recursive code on it overflows the C stack.
deep_list <- local({
  value <- NULL
  function() {
    if (is.null(value)) value <<- Reduce(function(v, i) list(v), seq_len(20000), 3)
    value
  }
})

# Bad or odd values of every kind, each made fresh by a function.
fuzz_scalar_table <- function() {
  invalid_utf8 <- rawToChar(as.raw(c(0x66, 0xff, 0xfe)))
  list(
    fv(NA, "NA"), fv(NA_integer_, "NA_integer_"), fv(NA_real_, "NA_real_"),
    fv(NaN, "NaN"), fv(Inf, "Inf"), fv(-Inf, "-Inf"), fv(-1, "-1"), fv(-1L, "-1L"),
    fv(0, "0"), fv(0L, "0L"), fv(-0, "-0"), fv(1.5, "1.5"), fv(0.5, "0.5"),
    fv(1 + 1e-12, "1+1e-12"), fv(2^31, "2^31"), fv(-2^31, "-2^31"),
    fv(.Machine$integer.max, "integer.max"), fv(2^53, "2^53"), fv(1e300, "1e300"),
    fv(.Machine$double.xmax, "double.xmax"), fv(5e-324, "5e-324"),
    fv(TRUE, "TRUE"), fv(FALSE, "FALSE"), fv(1i, "1i"), fv(as.raw(3), "raw"),
    fv("3", "\"3\""), fv("", "\"\""), fv(NA_character_, "NA_character_"),
    fv(invalid_utf8, "invalid UTF-8"), fv(strrep("x", 5000), "long string"),
    fv("\u540d\u524d", "CJK string"), fv(c("a", "b"), "c(\"a\", \"b\")"),
    fv(NULL, "NULL"), fv(list(), "list()"), fv(list(1), "list(1)"), fv(list(NULL), "list(NULL)"),
    fv(list(1, "a"), "list(1, \"a\")"), fv(list(list(2)), "list(list(2))"),
    fv(deep_list(), "list nested 20000 deep"),
    fv(list(a = 2, b = 3), "named list"), fv(function(...) 1, "function"),
    fv(new.env(), "environment"), fv(quote(x), "symbol"), fv(y ~ x, "formula"),
    fv(factor("a"), "factor"), fv(structure(3, class = "foo"), "classed 3"),
    fv(structure(18000, class = "Date"), "Date"),
    fv(numeric(0), "numeric(0)"), fv(integer(0), "integer(0)"), fv(character(0), "character(0)"),
    fv(c(1, 2, 3), "c(1, 2, 3)"), fv(1:2, "1:2"), fv(c(3, NA), "c(3, NA)"),
    fv(rep(3, 1e5), "rep(3, 1e5)"), fv(1:1e6, "1:1e6 (ALTREP)"), fv(c(a = 1, b = 2), "named c(1, 2)"),
    fv(matrix(3), "matrix(3)"), fv(data.frame(a = 1), "data.frame"),
    fv(array(2, c(1, 1, 1, 1)), "array(2, 1x1x1x1)"), fv(structure(1:2, class = "integer64"), "integer64-like")
  )
}

# Arrays of every type, rank, extent and content the fuzzer can think of.
fuzz_array <- function() {
  rank <- pick(list(0L, 1L, 2L, 3L, 4L, 4L, 4L, 4L, 4L, 5L))
  dims <- vapply(seq_len(rank), function(k) pick(list(0L, 1L, 1L, 2L, 3L, 4L, 5L, 6L, 8L)), 1L)
  if (rank == 4L && runif(1) < 0.6) dims[dims == 0L] <- 3L  # mostly non-empty 4D
  n <- prod(dims)
  kind <- pick(list("double", "double", "double", "special", "integer", "logical", "character",
                    "complex", "raw", "list", "altrep_int", "altrep_real", "dimnames", "classed",
                    "data.frame", "matrix", "factor", "big"))
  shape_label <- if (rank) paste(dims, collapse = "x") else "no dim"
  make <- function(values) {
    if (rank) dim(values) <- dims
    values
  }
  switch(kind,
    double = fv(make(rnorm(n)), paste("double", shape_label)),
    special = {
      v <- rnorm(n)
      v[sample.int(max(n, 1L), min(n, sample(1:3, 1)))] <- pick(list(NaN, NA, Inf, -Inf, 1e308, -1e308, 5e-324))
      fv(make(v[seq_len(n)]), paste("double with NaN/NA/Inf/huge", shape_label))
    },
    integer = fv(make(sample(-5:5, n, replace = TRUE)), paste("integer", shape_label)),
    logical = fv(make(sample(c(TRUE, FALSE, NA), n, replace = TRUE)), paste("logical", shape_label)),
    character = fv(make(rep("1", n)), paste("character", shape_label)),
    complex = fv(make(complex(real = rnorm(n))), paste("complex", shape_label)),
    raw = fv(make(as.raw(seq_len(n) %% 256)), paste("raw", shape_label)),
    list = fv(make(as.list(rnorm(n))), paste("list", shape_label)),
    altrep_int = fv(make(seq_len(n)), paste("ALTREP compact integer", shape_label)),
    altrep_real = fv(make(as.double(seq_len(n))), paste("ALTREP compact double", shape_label)),
    dimnames = {
      v <- make(rnorm(n))
      if (rank) dimnames(v) <- lapply(dims, function(d) sprintf("n%d", seq_len(d)))
      fv(v, paste("double with dimnames", shape_label))
    },
    classed = fv(structure(make(rnorm(n)), class = "foo"), paste("classed double", shape_label)),
    data.frame = fv(data.frame(a = rnorm(3), b = 1:3), "data.frame"),
    matrix = fv(matrix(rnorm(20), 4, 5), "matrix 4x5"),
    factor = fv(factor(letters[seq_len(min(n, 26))]), "factor"),
    big = {
      d <- pick(list(c(1L, 64L, 64L, 16L), c(16L, 16L, 16L, 16L), c(1L, 1L, 4096L, 4L)))
      fv(array(runif(prod(d)), d), paste("double", paste(d, collapse = "x")))
    }
  )
}

# A bad or extreme value: mostly from the table, sometimes an array, and
# sometimes one of `extremes` (values near the edge of what `arg` accepts).
fuzz_value <- function(extremes = list()) {
  u <- runif(1)
  if (length(extremes) && u < 0.35) return(pick(extremes))
  if (u < 0.55) return(fuzz_array())
  pick(fuzz_scalar_table())
}

# Values near the edge of each layer argument's domain, valid or not.
fuzz_extremes <- function() {
  big <- .Machine$integer.max
  pair <- list(fv(1, "1"), fv(7, "7"), fv(c(1, 9), "c(1, 9)"), fv(c(9, 1), "c(9, 1)"),
               fv(c(big, 1), "c(integer.max, 1)"), fv(2^20, "2^20"), fv(list(3, 5), "list(3, 5)"),
               fv(3L, "3L"), fv(c(a = 2, b = 2), "named c(2, 2)"), fv(big, "integer.max"),
               fv(1e5, "1e5"), fv(c(2, 2), "c(2, 2)"))
  list(
    kernel_size = pair, strides = pair, dilation_rate = pair,
    padding = list(fv("same", "\"same\""), fv("valid", "\"valid\""), fv("SAME", "\"SAME\""),
                   fv("Valid", "\"Valid\""), fv("full", "\"full\""), fv("causal", "\"causal\"")),
    depth_multiplier = list(fv(1, "1"), fv(5, "5"), fv(big, "integer.max"), fv(2^20, "2^20"),
                            fv(1e5, "1e5"), fv(list(2), "list(2)")),
    data_format = list(fv(NULL, "NULL"), fv("channels_first", "\"channels_first\""),
                       fv("CHANNELS_LAST", "\"CHANNELS_LAST\""), fv("nhwc", "\"nhwc\"")),
    activation = c(lapply(c(dw_activation_names(), "swish", "hard_swish", "RELU", "softmax2"),
                          function(a) fv(a, sprintf("\"%s\"", a))),
                   fuzz_activation_functions()),
    use_bias = list(fv(TRUE, "TRUE"), fv(FALSE, "FALSE"), fv(c(TRUE, FALSE), "c(TRUE, FALSE)")),
    depthwise_initializer = fuzz_initializer_values(),
    bias_initializer = fuzz_initializer_values(),
    name = list(fv("dw", "\"dw\""), fv(strrep("n", 1000), "1000-char name"),
                fv("\u540d\u524d", "CJK name"), fv("a b\n\"c\"", "name with quotes")),
    trainable = list(fv(TRUE, "TRUE"), fv(FALSE, "FALSE")),
    dtype = list(fv("float64", "\"float64\""), fv("float32", "\"float32\""), fv("float16", "\"float16\""),
                 fv("int8", "\"int8\"")),
    input_shape = list(fv(c(8, 8, 2), "c(8, 8, 2)"), fv(c(NA, 8, 2), "c(NA, 8, 2)"),
                       fv(list(8, 8, 2), "list(8, 8, 2)"), fv(c(big, 1, 1), "c(integer.max, 1, 1)"),
                       fv(c(1, 1, 2^30), "c(1, 1, 2^30)"), fv(c(4, 4), "c(4, 4)"),
                       fv(c(0, 0, 1), "c(0, 0, 1)")),
    depthwise_regularizer = list(fv("l2", "\"l2\""), fv(function(w) 0, "function")),
    bias_regularizer = list(fv("l1", "\"l1\"")),
    activity_regularizer = list(fv("l2", "\"l2\"")),
    depthwise_constraint = list(fv("non_neg", "\"non_neg\"")),
    bias_constraint = list(fv("max_norm", "\"max_norm\""))
  )
}

# R-function activations, good and bad.
fuzz_activation_functions <- function() {
  list(
    fv(function(v) v * 2, "function(v) v * 2"),
    fv(function(v) pmax(v, 0), "function(v) pmax(v, 0)"),
    fv(function(v) stop("activation exploded"), "function that errors"),
    fv(function(v) v[-1], "function returning one value fewer"),
    fv(function(v) c(v, 1), "function returning one value more"),
    fv(function(v) NULL, "function returning NULL"),
    fv(function(v) as.character(v), "function returning character"),
    fv(function(v) as.list(v), "function returning a list"),
    fv(function(v) v + 1i, "function returning complex"),
    fv(function(v) rep(NA, length(v)), "function returning NA"),
    fv(function(v) v > 0, "function returning logical"),
    fv(function(v) factor(v), "function returning a factor"),
    fv(function() 1, "function with no arguments"),
    fv(function(v) data.frame(v = as.vector(v)), "function returning a data frame"),
    fv(function(v) structure(v, class = "foo"), "function returning a classed array")
  )
}

fuzz_initializer_values <- function() {
  corrupt <- function(class_name, config) structure(list(class_name = class_name, config = config),
                                                    class = "depthwise_initializer")
  list(
    fv("he_normal", "\"he_normal\""), fv("Zeros", "\"Zeros\""), fv("glorot", "\"glorot\""),
    fv(initializer_constant(2), "initializer_constant(2)"),
    fv(initializer_random_uniform(seed = 1), "initializer_random_uniform(seed = 1)"),
    fv(initializer_variance_scaling(3, "fan_out", "uniform"), "variance_scaling"),
    fv(corrupt("Foo", list()), "initializer with unknown class_name"),
    fv(corrupt("Constant", list(value = "a")), "Constant with a string value"),
    fv(corrupt("HeNormal", list(scale = 2, mode = "fan_in", distribution = "normal")), "HeNormal with a bad distribution"),
    fv(corrupt("RandomNormal", list(mean = 0, stddev = -1)), "RandomNormal with stddev -1"),
    fv(corrupt("RandomUniform", list(minval = 1, maxval = 0, seed = 1.5)), "RandomUniform with minval > maxval"),
    fv(corrupt(NA_character_, NULL), "initializer with NA class_name"),
    fv(structure(list(), class = "depthwise_initializer"), "empty initializer object"),
    fv(corrupt("GlorotUniform", "not a list"), "initializer with a string config"),
    fv(function(shape, dtype = NULL) array(0.5, shape), "function filling 0.5"),
    fv(function(shape, dtype = NULL) stop("no weights"), "function that errors"),
    fv(function(shape, dtype = NULL) 1:3, "function returning 3 values"),
    fv(function(shape, dtype = NULL) rep("a", prod(shape)), "function returning strings"),
    fv(function(shape, dtype = NULL) rep(NaN, prod(shape)), "function returning NaN"),
    fv(function(shape, dtype = NULL) NULL, "function returning NULL"),
    fv(function() 1, "function with no arguments")
  )
}

# ---- Valid baselines --------------------------------------------------------

# A random valid layer configuration.
fuzz_good_config <- function() {
  cfg <- list(
    kernel_size = pick(list(1, 2, 3, c(1, 3), c(3, 1), c(2, 4), c(1, 5))),
    strides = pick(list(1, 1, 2, c(1, 2), c(2, 1), 3)),
    padding = pick(list("valid", "same")),
    depth_multiplier = pick(list(1L, 1L, 2L, 3L)),
    data_format = pick(list("channels_last", "channels_first")),
    dilation_rate = 1,
    activation = pick(list(NULL, "relu", "tanh", "softmax", "gelu", "elu", "linear")),
    use_bias = pick(list(TRUE, FALSE)),
    bias_initializer = pick(list("zeros", "ones", "random_normal"))
  )
  if (all(cfg$strides == 1) && runif(1) < 0.4) cfg$dilation_rate <- pick(list(2, c(1, 2), c(2, 1)))
  cfg
}

# A valid input array for `cfg`.
fuzz_good_input <- function(cfg) {
  k <- rep_len(cfg$kernel_size, 2)
  d <- rep_len(cfg$dilation_rate, 2)
  span <- (k - 1) * d + 1
  hw <- span + sample(0:4, 2, replace = TRUE)
  n <- sample(1:2, 1)
  ch <- sample(1:3, 1)
  dims <- if (cfg$data_format == "channels_first") c(n, ch, hw) else c(n, hw, ch)
  array(rnorm(prod(dims)), dims)
}

# ---- Result checks -----------------------------------------------------------

# TRUE, or a string saying what is wrong with a layer output `y` of `layer`
# for `x`: its type, its dims, and its numbers against the reference kernel.
check_layer_output <- function(y, layer, x) {
  if (!is.double(y) || length(dim(y)) != 4L) return("output is not a 4D double array")
  if (!identical(names(attributes(y)), "dim")) return("output has attributes other than dim")
  state <- fuzz_ns()$layer_state(layer)
  cfg <- state$config
  xd <- fuzz_ns()$as_double_array(x)
  expected_dims <- fuzz_ns()$output_geometry(cfg, dim(xd))$dims
  if (!identical(dim(y), expected_dims)) {
    return(sprintf("output dims %s, expected %s", paste(dim(y), collapse = "x"),
                   paste(expected_dims, collapse = "x")))
  }
  # Reference numbers: only where rounding cannot differ wildly (no Inf or
  # near-overflow inputs, where summation order decides Inf versus finite).
  if (length(y) > 1e5 || !all(is.finite(xd)) || any(abs(xd) > 1e100) ||
      !all(is.finite(state$kernel)) || any(abs(state$kernel) > 1e100)) return(TRUE)
  ref <- fuzz_ns()$dw_forward(xd, state$kernel, state$bias, cfg$strides, cfg$dilation_rate,
                              fuzz_ns()$padding_code(cfg$padding), cfg$data_format == "channels_first",
                              state$activation$code, 1L, TRUE)
  if (!is.null(state$activation$fn)) ref <- fuzz_ns()$apply_r_activation(state$activation$fn, ref)
  same <- all.equal(as.vector(y), as.vector(ref), tolerance = 1e-10)
  if (!isTRUE(same)) return(paste("output differs from the reference kernel:", same[[1]]))
  TRUE
}

is_layer <- function(v) inherits(v, "depthwise_layer")

# ---- Cases and targets ---------------------------------------------------------

# run: makes the call. check: TRUE or why the value is invalid. fuzzed: the
# arguments given bad values (a type/value error must name one of them).
# internal_ok: whether a depthwise_error_internal (an error raised by the
# C++ checks) is acceptable; for exported functions it is not, since their R
# checks should have stopped the bad value first.
fuzz_case <- function(target, label, run, check, fuzzed = character(), internal_ok = FALSE) {
  list(target = target, label = label, run = run, check = check, fuzzed = fuzzed,
       internal_ok = internal_ok)
}

# Replaces k arguments of `args` (from `candidates`) with fuzz values.
mutate_args <- function(args, candidates, extremes, k = pick(list(1L, 1L, 1L, 2L, 3L))) {
  chosen <- sample(candidates, min(k, length(candidates)))
  labels <- character()
  for (a in chosen) {
    v <- fuzz_value(extremes[[a]] %||% list())
    args[a] <- list(v$value)
    labels <- c(labels, sprintf("%s = %s", a, v$label))
  }
  list(args = args, chosen = chosen, label = paste(labels, collapse = ", "))
}

target_layer_args <- function() {
  cfg <- fuzz_good_config()
  x <- fuzz_good_input(cfg)
  with_object <- runif(1) < 0.75
  args <- c(if (with_object) list(object = x), cfg)
  candidates <- c(if (with_object) "object", "kernel_size", "strides", "padding", "depth_multiplier",
                  "data_format", "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                  "bias_initializer", "name", "trainable", "dtype", "input_shape",
                  "depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                  "depthwise_constraint", "bias_constraint")
  m <- mutate_args(args, candidates, fuzz_extremes())
  layer <- NULL
  fuzz_case("layer_depthwise_conv_2d", m$label,
    run = function() {
      # What layer_depthwise_conv_2d(object, ...) does, in two steps so that
      # check() can see the layer.
      spec <- m$args
      spec$object <- NULL
      layer <<- do.call(layer_depthwise_conv_2d, spec, quote = TRUE)
      if ("object" %in% names(m$args)) fuzz_ns()$compose_layer(m$args$object, layer) else layer
    },
    check = function(v) {
      if (!"object" %in% names(m$args)) return(if (is_layer(v)) TRUE else "expected a layer")
      check_layer_output(v, layer, m$args$object)
    },
    fuzzed = m$chosen
  )
}

# One call of layer_depthwise_conv_2d(object, ...) with object fuzzed: the
# error must name `object`, as a layer called directly names `inputs`.
target_layer_object <- function() {
  cfg <- fuzz_good_config()
  v <- fuzz_value()
  fuzz_case("layer_depthwise_conv_2d(object)", paste("object =", v$label),
    run = function() do.call(layer_depthwise_conv_2d, c(list(object = v$value), cfg), quote = TRUE),
    check = function(y) if (is.double(y) && length(dim(y)) == 4L) TRUE else "not a 4D double array",
    fuzzed = "object"
  )
}

target_layer_call <- function() {
  cfg <- fuzz_good_config()
  layer <- do.call(layer_depthwise_conv_2d, cfg, quote = TRUE)
  if (runif(1) < 0.5) layer(fuzz_good_input(cfg))
  v <- if (runif(1) < 0.3) {
    x <- fuzz_good_input(cfg)
    x[sample.int(length(x), 1)] <- pick(list(NaN, NA, Inf, -Inf, 1e308))
    fv(x, "valid input with one NaN/NA/Inf/huge value")
  } else {
    fuzz_value()
  }
  extra <- if (runif(1) < 0.15) pick(list(list(training = TRUE), list(training = NA), list(1), list(foo = 2))) else list()
  fuzz_case("layer(inputs)", paste0("inputs = ", v$label, if (length(extra)) " + extra argument"),
    run = function() do.call(layer, c(list(v$value), extra), quote = TRUE),
    check = function(y) check_layer_output(y, layer, v$value),
    fuzzed = if (length(extra)) character() else "inputs"
  )
}

target_build <- function() {
  cfg <- fuzz_good_config()
  layer <- do.call(layer_depthwise_conv_2d, cfg, quote = TRUE)
  if (runif(1) < 0.3) layer(fuzz_good_input(cfg))
  v <- fuzz_value(list(fv(c(NA, 8, 8, 2), "c(NA, 8, 8, 2)"), fv(shape(NA, 5, 5, 3), "shape(NA, 5, 5, 3)"),
                       fv(c(NA, 2^31 - 1, 2^31 - 1, 1), "c(NA, integer.max, integer.max, 1)"),
                       fv(c(1, 1, 1, 2^31 - 1), "c(1, 1, 1, integer.max)"),
                       fv(c(NA, NA, NA, 3), "c(NA, NA, NA, 3)"), fv(c(2, 8, 8, 0), "0 channels")))
  obj <- if (runif(1) < 0.15) fuzz_value() else fv(layer, "layer")
  fuzz_case("build", sprintf("object = %s, input_shape = %s", obj$label, v$label),
    run = function() build(obj$value, v$value),
    check = function(r) if (is_layer(r) && r$built) TRUE else "build() did not return a built layer",
    fuzzed = c(if (obj$label != "layer") "object", "input_shape")
  )
}

target_weights <- function() {
  cfg <- fuzz_good_config()
  layer <- do.call(layer_depthwise_conv_2d, cfg, quote = TRUE)
  built <- runif(1) < 0.85
  if (built) layer(fuzz_good_input(cfg))
  op <- pick(list("set", "set", "set", "get", "count", "keep"))
  if (op == "set") {
    w <- if (built) get_weights(layer) else list(array(0, c(1, 1, 1, 1)))
    expected_dims <- lapply(w, dim)
    mutation <- pick(list("kernel", "bias", "list", "extra", "drop", "dim", "na", "type"))
    wl <- switch(mutation,
      kernel = { v <- fuzz_value(); w[1] <- list(v$value); fv(w, paste("kernel =", v$label)) },
      bias = { v <- fuzz_value(); w[length(w)] <- list(v$value); fv(w, paste("last weight =", v$label)) },
      list = fuzz_value(),
      extra = fv(c(w, list(1)), "one weight too many"),
      drop = fv(w[-1], "one weight too few"),
      dim = { k <- w[[1]]; dim(k) <- rev(dim(k)); w[[1]] <- k; fv(w, "kernel with reversed dims") },
      na = { w[[1]][] <- NA; fv(w, "kernel of NA") },
      type = { w[[1]] <- array(as.integer(w[[1]] > 0), dim(w[[1]])); fv(w, "integer kernel") }
    )
    return(fuzz_case("set_weights", wl$label,
      run = function() { set_weights(layer, wl$value); get_weights(layer) },
      check = function(r) {
        if (!is.list(r) || !all(vapply(r, is.double, TRUE))) return("weights are not double")
        if (!identical(lapply(r, dim), expected_dims)) return("weights changed shape")
        TRUE
      },
      fuzzed = "weights"
    ))
  }
  obj <- if (runif(1) < 0.5) fuzz_value() else fv(layer, "layer")
  fuzzed <- if (obj$label != "layer") c("object", "layer")
  switch(op,
    get = fuzz_case("get_weights", obj$label, function() get_weights(obj$value),
                    function(r) if (is.list(r) && all(vapply(r, is.double, TRUE))) TRUE else "not a list of doubles",
                    fuzzed),
    count = fuzz_case("count_params", obj$label, function() count_params(obj$value),
                      function(r) if (is.numeric(r) && length(r) == 1L && r >= 0) TRUE else "not a count",
                      fuzzed),
    keep = {
      keep <- if (runif(1) < 0.5) fuzz_value() else fv(TRUE, "TRUE")
      fuzz_case("keep_last_output", paste(obj$label, keep$label, sep = ", "),
                function() keep_last_output(obj$value, keep$value),
                function(r) if (is_layer(r)) TRUE else "not a layer",
                c(fuzzed, if (keep$label != "TRUE") "keep"))
    }
  )
}

target_shape <- function() {
  k <- pick(list(1L, 1L, 2L, 3L))
  vals <- lapply(seq_len(k), function(i) fuzz_value())
  fuzz_case("shape", paste(vapply(vals, `[[`, "", "label"), collapse = ", "),
    run = function() do.call(shape, lapply(vals, `[[`, "value"), quote = TRUE),
    check = function(s) {
      v <- unclass(s)
      if (inherits(s, "depthwise_shape") && is.integer(v) && all(is.na(v) | v >= 0)) TRUE else "invalid shape"
    },
    fuzzed = character()  # shape() has only `...`: its messages name no argument
  )
}

target_random <- function() {
  fn <- pick(list("random_uniform", "random_normal"))
  args <- if (fn == "random_uniform") list(shape = c(2, 3), minval = 0, maxval = 1, dtype = NULL, seed = NULL) else
    list(shape = c(2, 3), mean = 0, stddev = 1, dtype = NULL, seed = NULL)
  extremes <- list(shape = list(fv(c(2^31, 2), "c(2^31, 2)"), fv(c(2^20, 2^20), "c(2^20, 2^20)"),
                                fv(c(0, 5), "c(0, 5)"), fv(shape(NA, 2), "shape(NA, 2)"),
                                fv(list(2, 3), "list(2, 3)")),
                   seed = list(fv(2^31, "2^31"), fv(-5, "-5"), fv(1.5, "1.5")),
                   dtype = list(fv("float16", "\"float16\""), fv("FLOAT64", "\"FLOAT64\"")))
  m <- mutate_args(args, names(args), extremes)
  fuzz_case(fn, m$label,
    run = function() do.call(fn, m$args, quote = TRUE),
    check = function(r) if (is.double(r) && !is.null(dim(r))) TRUE else "not a double array",
    fuzzed = m$chosen
  )
}

target_initializers <- function() {
  ctors <- c("initializer_glorot_uniform", "initializer_glorot_normal", "initializer_he_uniform",
             "initializer_he_normal", "initializer_lecun_uniform", "initializer_lecun_normal",
             "initializer_variance_scaling", "initializer_zeros", "initializer_ones",
             "initializer_constant", "initializer_random_uniform", "initializer_random_normal",
             "initializer_truncated_normal")
  if (runif(1) < 0.45) {
    init <- pick(fuzz_initializer_values())
    shp <- if (runif(1) < 0.5) fuzz_value(list(fv(c(3, 3, 2, 1), "c(3, 3, 2, 1)"), fv(c(2^40, 2), "c(2^40, 2)")))
      else fv(c(3, 3, 2, 1), "c(3, 3, 2, 1)")
    return(fuzz_case("initializer_draw", paste(init$label, shp$label, sep = ", "),
      run = function() initializer_draw(init$value, shp$value),
      check = function(r) if (is.double(r) && !is.null(dim(r))) TRUE else "not a double array",
      fuzzed = c("initializer", "shape")
    ))
  }
  # (Constructors without arguments are left out: calling them with one is
  # R's own "unused argument" error, before any package code runs.)
  fn <- pick(as.list(ctors[!ctors %in% c("initializer_zeros", "initializer_ones")]))
  formals_of <- names(formals(getExportedValue("depthwise", fn)))
  m <- mutate_args(list(), formals_of, list(mode = list(fv("FAN_IN", "\"FAN_IN\"")),
                                            distribution = list(fv("normal", "\"normal\""))))
  fuzz_case(fn, m$label,
    run = function() {
      init <- do.call(fn, m$args, quote = TRUE)
      list(init, initializer_draw(init, c(2, 2, 1, 1)))
    },
    check = function(r) {
      if (inherits(r[[1]], "depthwise_initializer") && is.double(r[[2]])) TRUE else "not an initializer"
    },
    fuzzed = m$chosen
  )
}

target_config <- function() {
  v <- fuzz_value(list(fv("CHANNELS_FIRST", "\"CHANNELS_FIRST\""), fv("channels_last", "\"channels_last\"")))
  fuzz_case("config_set_image_data_format", v$label,
    run = function() { config_set_image_data_format(v$value); config_image_data_format() },
    check = function(r) if (r %in% c("channels_last", "channels_first")) TRUE else "not a data format",
    fuzzed = "data_format"
  )
}

target_threads <- function() {
  v <- fuzz_value(list(fv(1, "1"), fv(2, "2"), fv(7, "7"), fv(1e9, "1e9"), fv(NULL, "NULL")))
  how <- pick(list("set", "option", "env"))
  cfg <- fuzz_good_config()
  x <- fuzz_good_input(cfg)
  # Half the time enough work that the thread setting is read and used.
  if (runif(1) < 0.5) {
    cfg$data_format <- "channels_last"
    cfg$dilation_rate <- 1
    cfg$kernel_size <- 3
    x <- array(rnorm(64 * 64 * 8), c(1, 64, 64, 8))
  }
  layer <- do.call(layer_depthwise_conv_2d, cfg, quote = TRUE)
  run <- switch(how,
    set = function() { set_depthwise_threads(v$value); layer(x) },
    option = function() { options(depthwise.num_threads = v$value); layer(x) },
    env = function() {
      s <- tryCatch(as.character(v$value)[1], error = function(e) "?")
      Sys.setenv(DEPTHWISE_NUM_THREADS = if (is.na(s)) "NA" else s)
      get_depthwise_threads()
      layer(x)
    }
  )
  fuzz_case(paste0("threads (", how, ")"), v$label, run = run,
    check = function(y) check_layer_output(y, layer, x),
    fuzzed = c("n", "options(depthwise.num_threads)", "DEPTHWISE_NUM_THREADS")
  )
}

# The C++ entry points directly, through run_cpp() (which every R caller
# uses): bad arguments must give a classed error, never a crash.
target_internal <- function() {
  ns <- fuzz_ns()
  cfg <- fuzz_good_config()
  x <- fuzz_good_input(cfg)
  C <- dim(x)[if (cfg$data_format == "channels_first") 2 else 4]
  M <- cfg$depth_multiplier
  k <- rep_len(cfg$kernel_size, 2)
  fn <- pick(list("dw_forward", "dw_forward", "dw_output_geometry", "dw_activate"))
  extremes <- list(threads = list(fv(1e6L, "1e6L"), fv(.Machine$integer.max, "integer.max"), fv(3L, "3L")),
                   activation = list(fv(17L, "17L"), fv(18L, "18L"), fv(-1L, "-1L")),
                   padding = list(fv(2L, "2L"), fv(1, "1")),
                   strides = list(fv(c(2^31, 1), "c(2^31, 1)"), fv(c(9e15, 1), "c(9e15, 1)"), fv(c(3L, 3L), "c(3L, 3L)")),
                   dilation = list(fv(c(2^31, 1), "c(2^31, 1)"), fv(c(2L, 3L), "c(2L, 3L)")),
                   in_dims = list(fv(c(1, 2^40, 2^40, 4), "c(1, 2^40, 2^40, 4)"), fv(c(2, 2^16, 2^16, 4), "2^33 elements"),
                                  fv(c(-1, 4, 4, 1), "negative dim"), fv(c(1, 9e15, 1, 1), "9e15")))
  args <- switch(fn,
    dw_forward = list(x = x, kernel = array(rnorm(prod(k) * C * M), c(k, C, M)),
                      bias = if (runif(1) < 0.5) rnorm(C * M), strides = as.integer(rep_len(cfg$strides, 2)),
                      dilation = as.integer(rep_len(cfg$dilation_rate, 2)),
                      padding = ns$padding_code(cfg$padding), channels_first = cfg$data_format == "channels_first",
                      activation = sample(0:17, 1), threads = sample(1:4, 1), reference = runif(1) < 0.5),
    dw_output_geometry = list(in_dims = as.numeric(dim(x)), kernel_size = as.integer(k),
                              strides = as.integer(rep_len(cfg$strides, 2)),
                              dilation = as.integer(rep_len(cfg$dilation_rate, 2)),
                              padding = ns$padding_code(cfg$padding), multiplier = M,
                              channels_first = cfg$data_format == "channels_first"),
    dw_activate = list(x = x, activation = sample(0:17, 1))
  )
  m <- mutate_args(args, names(args), extremes)
  fuzz_case(paste0("internal ", fn), m$label,
    run = function() ns$run_cpp(do.call(ns[[fn]], m$args, quote = TRUE)),
    check = function(r) if (is.double(r)) TRUE else "not a double vector",
    fuzzed = character(),  # internal messages name C++ arguments, not R ones
    internal_ok = TRUE
  )
}

target_layer_access <- function() {
  layer <- layer_depthwise_conv_2d(kernel_size = 2)
  v <- fuzz_value(list(fv("kernel", "\"kernel\""), fv("config", "\"config\""), fv("nope", "\"nope\"")))
  fuzz_case("layer[[i]]", v$label,
    run = function() layer[[v$value]],
    check = function(r) TRUE,
    fuzzed = "i"
  )
}

# Targets and their weights (how often each is drawn). Once sequential
# models and get_config()/from_config() exist, add targets for them here.
target_model <- function() {
  cfg <- fuzz_good_config()
  x <- fuzz_good_input(cfg)
  known <- runif(1) < 0.5
  shape_arg <- if (known) fv(dim(x)[-1], "good input_shape") else fv(NULL, "NULL")
  step <- pick(list("input_shape", "add", "call", "predict"))
  if (step == "input_shape") shape_arg <- fuzz_value()
  layer <- if (step == "add" && runif(1) < 0.5) fuzz_value() else fv(do.call(layer_depthwise_conv_2d, cfg, quote = TRUE), "layer")
  input <- if (step %in% c("call", "predict") && runif(1) < 0.6) fuzz_value() else fv(x, "good input")
  batch <- if (step == "predict" && runif(1) < 0.5) fuzz_value() else fv(2, "2")
  fuzz_case("keras_model_sequential", sprintf("%s: input_shape = %s, layer = %s, x = %s, batch_size = %s",
                                               step, shape_arg$label, layer$label, input$label, batch$label),
    run = function() {
      model <- keras_model_sequential(input_shape = shape_arg$value)
      model <- layer_depthwise_conv_2d(model, kernel_size = 1)
      if (!is_layer(layer$value)) return(fuzz_ns()$model_add(model, layer$value))
      fuzz_ns()$model_add(model, layer$value)
      if (step == "predict") predict(model, input$value, batch_size = batch$value, verbose = 0) else model(input$value)
    },
    check = function(y) if (is.double(y) && length(dim(y)) == 4L) TRUE else "model output is not a 4D double array",
    fuzzed = c(if (step == "input_shape") "input_shape", if (layer$label != "layer") c("layer", "object"),
               if (input$label != "good input") c("inputs", "x", "object"), if (batch$label != "2") "batch_size")
  )
}

target_from_config <- function() {
  cfg <- fuzz_good_config()
  layer <- do.call(layer_depthwise_conv_2d, cfg, quote = TRUE)
  as_model <- runif(1) < 0.3
  config <- if (as_model) {
    get_config(keras_model_sequential(input_shape = dim(fuzz_good_input(cfg))[-1], layers = list(layer)))
  } else {
    get_config(layer)
  }
  keys <- names(config)
  how <- pick(list("replace", "replace", "replace", "drop", "extra", "nested", "none"))
  key <- pick(as.list(keys))
  label <- switch(how, none = "unchanged", drop = paste("without", key), extra = "extra key `bogus`",
                  nested = paste("corrupt", key, "entry"), NULL)
  if (how == "replace") {
    v <- fuzz_value()
    config[key] <- list(v$value)
    label <- sprintf("%s = %s", key, v$label)
  } else if (how == "drop") {
    config[[key]] <- NULL
  } else if (how == "extra") {
    config$bogus <- 1
  } else if (how == "nested") {
    v <- fuzz_value()
    if (is.list(config[[key]]) && length(config[[key]])) {
      config[[key]][[sample(length(config[[key]]), 1)]] <- v$value
    } else {
      config[key] <- list(list(class_name = v$value, config = v$value))
    }
    label <- paste(label, "=", v$label)
  }
  if (runif(1) < 0.1) attr(config, "class_name") <- pick(list("Dense", NA, 3))
  fuzz_case("from_config", paste(if (as_model) "model" else "layer", "config,", label),
    run = function() {
      obj <- from_config(config)
      if (how == "none") stopifnot(identical(get_config(obj), config))
      obj
    },
    check = function(obj) {
      if (inherits(obj, c("depthwise_layer", "depthwise_model"))) TRUE else "from_config() returned neither a layer nor a model"
    },
    # A corrupt config is named through `config` (or the key inside it).
    fuzzed = if (how == "none") character() else c("config", key)
  )
}

target_regularizers_constraints <- function() {
  kind <- pick(list("l1", "l2", "l1_l2", "maxnorm", "minmaxnorm", "unitnorm", "nonneg"))
  a <- if (runif(1) < 0.5) fuzz_value() else fv(0.5, "0.5")
  axis <- if (runif(1) < 0.4) fuzz_value() else fv(c(1, 2), "c(1, 2)")
  w <- if (runif(1) < 0.4) fuzz_value() else fv(array(rnorm(36), c(3, 3, 2, 2)), "weight 3x3x2x2")
  fuzz_case(paste0("regularizer/constraint ", kind),
            sprintf("%s(%s, axis = %s) on %s", kind, a$label, axis$label, w$label),
    run = function() {
      f <- switch(kind,
        l1 = regularizer_l1(a$value), l2 = regularizer_l2(a$value), l1_l2 = regularizer_l1_l2(a$value, a$value),
        maxnorm = constraint_maxnorm(a$value, axis$value),
        minmaxnorm = constraint_minmaxnorm(0, a$value, 1, axis$value),
        unitnorm = constraint_unitnorm(axis$value), nonneg = constraint_nonneg())
      layer <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2, input_shape = c(5, 5, 2),
        depthwise_regularizer = if (startsWith(kind, "l")) f,
        depthwise_constraint = if (!startsWith(kind, "l")) f)
      set_weights(layer, list(w$value, rep(0, 4)), constrain = TRUE)
      list(losses = layer$losses, kernel = get_weights(layer)[[1]])
    },
    check = function(r) {
      if (!is.list(r$losses) || !all(vapply(r$losses, function(v) is.double(v) && length(v) == 1L, TRUE))) {
        return("losses are not single numbers")
      }
      if (!identical(dim(r$kernel), c(3L, 3L, 2L, 2L))) return("constrained kernel changed shape")
      TRUE
    },
    fuzzed = c(if (a$label != "0.5") c("l1", "l2", "max_value"), if (axis$label != "c(1, 2)") "axis",
               if (w$label != "weight 3x3x2x2") c("weights", "kernel"))
  )
}

fuzz_targets <- function() {
  list(
    list(fn = target_layer_args, weight = 6),
    list(fn = target_layer_object, weight = 2),
    list(fn = target_layer_call, weight = 4),
    list(fn = target_build, weight = 2),
    list(fn = target_weights, weight = 3),
    list(fn = target_shape, weight = 1),
    list(fn = target_random, weight = 1),
    list(fn = target_initializers, weight = 2),
    list(fn = target_config, weight = 1),
    list(fn = target_threads, weight = 1),
    list(fn = target_internal, weight = 3),
    list(fn = target_layer_access, weight = 0.5),
    list(fn = target_model, weight = 2),
    list(fn = target_from_config, weight = 2),
    list(fn = target_regularizers_constraints, weight = 1)
  )
}

# ---- Running -----------------------------------------------------------------

fuzz_known_subclasses <- c("type", "value", "shape", "incompatible", "unsupported", "state", "size", "internal")

# Runs one case and sorts its outcome. Returns a one-row data frame.
fuzz_run_case <- function(i, case) {
  warnings <- character()
  t0 <- proc.time()[["elapsed"]]
  res <- withCallingHandlers(
    tryCatch(list(value = case$run()), error = function(e) list(error = e)),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  seconds <- proc.time()[["elapsed"]] - t0
  outcome <- if (!is.null(res$error)) {
    e <- res$error
    sub <- sub("^depthwise_error_", "", grep("^depthwise_error_", class(e), value = TRUE))
    if (!inherits(e, "depthwise_error") || !length(sub) || !all(sub %in% fuzz_known_subclasses)) {
      sprintf("FAIL unclassed error <%s>: %s", paste(class(e), collapse = "/"), conditionMessage(e))
    } else if (sub[1] == "internal" && !case$internal_ok) {
      sprintf("FAIL internal error from an exported function (its R checks missed it): %s",
              conditionMessage(e))
    } else if (sub[1] %in% c("type", "value") && length(case$fuzzed) &&
               !any(vapply(paste0("`", case$fuzzed), grepl, TRUE, x = conditionMessage(e), fixed = TRUE))) {
      sprintf("FAIL %s error that names none of %s: %s", sub[1], paste(case$fuzzed, collapse = ", "),
              conditionMessage(e))
    } else {
      paste("classed", sub[1])
    }
  } else {
    ok <- tryCatch(case$check(res$value), error = function(e) paste("check failed:", conditionMessage(e)))
    if (isTRUE(ok)) "ok" else paste("FAIL invalid result:", ok)
  }
  if (length(warnings)) outcome <- paste0("FAIL warning: ", warnings[[1]], " (outcome: ", outcome, ")")
  data.frame(i = i, target = case$target, label = case$label, outcome = outcome,
             seconds = seconds, stringsAsFactors = FALSE)
}

# Global state a case may change, put back after each one.
fuzz_save_state <- function() {
  list(options = options()[c("depthwise.num_threads", "depthwise.memory_limit")],
       env = Sys.getenv("DEPTHWISE_NUM_THREADS", unset = NA),
       format = fuzz_ns()$the$image_data_format)
}

fuzz_restore_state <- function(s) {
  options(depthwise.num_threads = s$options$depthwise.num_threads,
          depthwise.memory_limit = s$options$depthwise.memory_limit)
  if (is.na(s$env)) Sys.unsetenv("DEPTHWISE_NUM_THREADS") else Sys.setenv(DEPTHWISE_NUM_THREADS = s$env)
  assign("image_data_format", s$format, envir = fuzz_ns()$the)
}

# Runs cases seed + 1 ... seed + n (or only those in `only`), writing the
# case about to run to `progress` so a crash or hang can be pinned on it.
# `selftest` ("crash" or "hang") replaces case 2 with one that kills its own
# process or sleeps, to show that fuzz_in_child() notices.
fuzz_run <- function(n, seed, progress = NULL, only = NULL, memory_limit = 2^28, selftest = NULL) {
  old <- options(depthwise.memory_limit = memory_limit)
  on.exit(options(old), add = TRUE)
  targets <- fuzz_targets()
  weights <- vapply(targets, `[[`, 1, "weight")
  ids <- if (length(only)) only else seq_len(n)
  rows <- vector("list", length(ids))
  for (k in seq_along(ids)) {
    i <- ids[[k]]
    set.seed(seed + i)
    target <- targets[[sample.int(length(targets), 1L, prob = weights)]]
    saved <- fuzz_save_state()
    case <- target$fn()
    if (length(selftest) && i == 2) case <- fuzz_selftest_case(selftest)
    if (!is.null(progress)) cat(i, "\t", case$target, "\t", case$label, "\n", sep = "", file = progress)
    rows[[k]] <- fuzz_run_case(i, case)
    fuzz_restore_state(saved)
  }
  do.call(rbind, rows)
}

fuzz_selftest_case <- function(kind) {
  run <- switch(kind,
    crash = function() tools::pskill(Sys.getpid(), tools::SIGKILL),
    hang = function() Sys.sleep(3600)
  )
  fuzz_case(paste("selftest", kind), "deliberate", run, function(v) TRUE)
}

fuzz_settings <- function() {
  num <- function(var, default) {
    v <- suppressWarnings(as.numeric(Sys.getenv(var, "")))
    if (is.na(v)) default else v
  }
  only <- Sys.getenv("DEPTHWISE_FUZZ_ONLY", "")
  list(n = num("DEPTHWISE_FUZZ_N", 1000), seed = num("DEPTHWISE_FUZZ_SEED", 20240601),
       timeout = num("DEPTHWISE_FUZZ_TIMEOUT", 600),
       only = if (nzchar(only)) as.numeric(strsplit(only, ",")[[1]]))
}

# Command-line arguments for child R processes. DEPTHWISE_CHILD_DEBUGGER
# (for example "valgrind --tool=memcheck") runs them under a debugger, so that
# tools/valgrind-tests.sh covers the children too.
child_cmdargs <- function() {
  dbg <- Sys.getenv("DEPTHWISE_CHILD_DEBUGGER", "")
  c(if (nzchar(dbg)) c("-d", dbg), "--slave", "--no-save", "--no-restore")
}

# Runs the fuzzer in a child R process. Returns list(results, error,
# progress): `error` is NULL unless the child crashed or timed out, and then
# `progress` names the case that was running.
fuzz_in_child <- function(settings = fuzz_settings()) {
  progress <- tempfile("fuzz-progress-")
  on.exit(unlink(progress), add = TRUE)
  helper <- normalizePath(test_path("helper-fuzz.R"))
  child <- function(helper, n, seed, progress, only, selftest) {
    suppressPackageStartupMessages(library(depthwise))
    env <- new.env(parent = asNamespace("depthwise"))
    sys.source(helper, envir = env)
    env$fuzz_run(n, seed, progress = progress, only = only, selftest = selftest)
  }
  out <- tryCatch(
    list(results = callr::r(child, args = list(helper, settings$n, settings$seed, progress, settings$only,
                                        settings$selftest),
                            libpath = .libPaths(), timeout = settings$timeout, cmdargs = child_cmdargs(),
                            error = "error"),
         error = NULL),
    error = function(e) list(results = NULL, error = e)
  )
  out$progress <- if (file.exists(progress)) paste(readLines(progress, warn = FALSE), collapse = " ") else ""
  out
}
