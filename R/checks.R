# Argument checks shared by the exported functions. Each returns the
# normalised value or raises a classed error naming `arg` and the value given.

is_whole <- function(x) {
  is.numeric(x) && !is.na(x) && is.finite(x) && x == trunc(x)
}

# One or two positive whole numbers (vector or list) -> integer(2).
check_int_pair <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  force(arg)  # before `x` changes below, or the message names `<dbl>` instead of the argument
  if (is.list(x) && !is.data.frame(x) && all(vapply(x, function(v) is.atomic(v) && length(v) == 1L, TRUE))) {
    x <- unlist(x, use.names = FALSE)
  }
  what <- sprintf("`%s` must be one or two positive whole numbers", arg)
  if (!is.numeric(x)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "type", call = call)
  }
  if (!length(x) %in% 1:2 || !all(vapply(x, is_whole, TRUE)) || any(x < 1) ||
      any(x > .Machine$integer.max)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "value", call = call)
  }
  rep_len(as.integer(x), 2L)
}

# A single positive whole number -> integer(1).
check_count <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  what <- sprintf("`%s` must be a single positive whole number", arg)
  if (is.list(x) && length(x) == 1L) x <- x[[1]]
  if (!is.numeric(x)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "type", call = call)
  }
  if (length(x) != 1L || !is_whole(x) || x < 1 || x > .Machine$integer.max) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "value", call = call)
  }
  as.integer(x)
}

# One of `choices`, matched case-insensitively -> the canonical lower-case choice.
check_choice <- function(x, choices, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  what <- sprintf("`%s` must be one of %s", arg, paste0('"', choices, '"', collapse = ", "))
  if (!is.character(x) || length(x) != 1L || is.na(x)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))),
                    if (is.character(x)) "value" else "type", call = call)
  }
  # tolower() fails on a string that is invalid in the session's encoding.
  hit <- match(tryCatch(tolower(x), error = function(e) NA_character_), choices)
  if (is.na(hit)) {
    abort_depthwise(c(what, x = sprintf("You supplied %s.", format_value(x))), "value", call = call)
  }
  choices[[hit]]
}

check_flag <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be TRUE or FALSE", arg), x = sprintf("You supplied %s.", format_value(x))),
      if (is.logical(x)) "value" else "type", call = call
    )
  }
  x
}

check_string <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be a single non-empty string", arg), x = sprintf("You supplied %s.", format_value(x))),
      if (is.character(x)) "value" else "type", call = call
    )
  }
  x
}

# Turns an array-like `x` into a double array with a dim attribute, or errors.
# Integer and logical arrays convert (as Keras casts them); everything else
# that is not numeric is a type error.
as_double_array <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (missing(x)) {
    abort_depthwise(
      c(sprintf("`%s` is missing: a numeric array is required", arg),
        i = "For example `layer(array(0, c(1, 8, 8, 3)))`."),
      "value", call = call
    )
  }
  if (is.data.frame(x) || !(is.numeric(x) || is.logical(x)) || is.object(x) && !is.array(x)) {
    abort_depthwise(
      c(sprintf("`%s` must be a numeric array", arg), x = sprintf("You supplied %s.", format_value(x))),
      "type", call = call
    )
  }
  if (is.null(dim(x))) {
    abort_depthwise(
      c(sprintf("`%s` must be an array with a `dim` attribute", arg),
        x = sprintf("You supplied a %s vector of length %d.", typeof(x), length(x))),
      "shape", call = call
    )
  }
  # Only a type conversion copies; a double array (dimnames and all) goes to
  # C++ as it is, since the kernels read nothing but the data and dim.
  if (!is.double(x)) storage.mode(x) <- "double"
  x
}

# Guards every allocation whose size a user controls (layer outputs, weights,
# random arrays): `n` doubles must fit in one R vector and in the memory that
# is free, else a "size" error before any work. Without this, R either fails
# with an unclassed "cannot allocate" error or, on Linux, commits the memory
# and is killed by the kernel when it touches it. `what` names the array.
check_allocation <- function(n, what, hint = NULL, call = rlang::caller_env()) {
  n <- as.numeric(n)
  if (is.na(n) || n > max_vector_length) {
    abort_depthwise(
      c(sprintf("%s would have more elements than an R vector can hold", what),
        x = sprintf("It would have %s elements; R's limit is 2^52.", format_count(n))),
      "size", call = call
    )
  }
  bytes <- 8 * n
  limit <- memory_limit(bytes, call = call)
  if (bytes > limit$bytes) {
    abort_depthwise(
      c(sprintf("%s would need %s, more than %s", what, format_bytes(bytes), limit$what),
        i = hint),
      "size", call = call
    )
  }
  invisible(n)
}

max_vector_length <- 2^52

size_hint <- "Use a smaller input, kernel_size or depth_multiplier."

# The most bytes one allocation may take: the option depthwise.memory_limit
# (bytes) if set, and for allocations of 64 MiB or more also the memory the
# system has free (MemAvailable + SwapFree on Linux; not known elsewhere).
memory_limit <- function(bytes, call = rlang::caller_env()) {
  limit <- list(bytes = Inf, what = "")
  opt <- getOption("depthwise.memory_limit")
  if (!is.null(opt)) {
    if (!is.numeric(opt) || length(opt) != 1L || is.na(opt) || opt <= 0) {
      abort_depthwise(
        c("`options(depthwise.memory_limit)` must be NULL or a positive number of bytes",
          x = sprintf("You supplied %s.", format_value(opt))),
        if (is.numeric(opt)) "value" else "type", call = call
      )
    }
    limit <- list(bytes = opt, what = sprintf("the limit of %s set by options(depthwise.memory_limit)",
                                             format_bytes(opt)))
  }
  if (bytes >= 2^26) {
    free <- free_memory()
    if (!is.na(free) && free < limit$bytes) {
      limit <- list(bytes = free, what = sprintf("the %s of memory available", format_bytes(free)))
    }
  }
  limit
}

# Bytes the system can still give this process, or NA when unknown.
free_memory <- function(meminfo = "/proc/meminfo") {
  if (!file.exists(meminfo)) return(NA_real_)
  lines <- tryCatch(readLines(meminfo, warn = FALSE), error = function(e) character())
  kib <- function(field) {
    hit <- grep(paste0("^", field, ":"), lines, value = TRUE)
    if (length(hit) != 1L) return(NA_real_)
    suppressWarnings(as.numeric(gsub("[^0-9]", "", hit)))
  }
  available <- kib("MemAvailable")
  if (is.na(available)) return(NA_real_)
  1024 * (available + max(0, kib("SwapFree"), na.rm = TRUE))
}

format_bytes <- function(bytes) {
  units <- c("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
  k <- max(1, min(length(units), floor(log(max(bytes, 1), 1024)) + 1))
  if (k == 1) sprintf("%.0f bytes", bytes) else sprintf("%.1f %s", bytes / 1024^(k - 1), units[[k]])
}

format_count <- function(n) format(n, big.mark = ",", scientific = n >= 1e15)
