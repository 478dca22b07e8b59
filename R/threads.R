#' Threads used by the convolution kernels
#'
#' The kernels split work across output channels (or, for few channels,
#' bands of output columns) over the package's worker threads. They start
#' with the first large call and spin for up to 2 ms after each call before
#' they sleep, so back-to-back calls do not pay for waking them; in a forked
#' child (`parallel::mclapply()`) the calls run on the child's own thread.
#' The thread count comes from, in
#' order: `set_depthwise_threads()` / `options(depthwise.num_threads =)`, the
#' environment variable `DEPTHWISE_NUM_THREADS`, else the number of physical
#' cores. It is always capped by the OpenMP limits (`OMP_THREAD_LIMIT`,
#' `OMP_NUM_THREADS`, read when the call is made), by the number of cores,
#' and at 2 while `R CMD check` runs (CRAN policy). Small problems run on one
#' thread whatever the setting, since starting threads would cost more than
#' it saves. Results are identical at every thread count.
#'
#' @param n A positive whole number, or `NULL` to go back to the default.
#' @returns `get_depthwise_threads()`: the number of threads a large call
#'   uses. `set_depthwise_threads()`: the previous setting, invisibly.
#' @export
#' @examples
#' get_depthwise_threads()
#' old <- set_depthwise_threads(1)
#' set_depthwise_threads(old)
get_depthwise_threads <- function() {
  # Every large call asks, and working it out reads several variables and
  # parses them (~12 us); so the answer is kept for as long as everything it
  # depends on reads the same: the option, and (dw_thread_key(), in C++)
  # DEPTHWISE_NUM_THREADS, OMP_THREAD_LIMIT, OMP_NUM_THREADS,
  # _R_CHECK_LIMIT_CORES_ and dw_max_threads(). An invalid setting is never
  # kept: it errors on every call.
  key <- list(getOption("depthwise.num_threads"), dw_thread_key())
  if (!identical(key, thread_memo$key)) {
    requested <- requested_threads()
    thread_memo$value <- as.integer(max(1L, min(requested, thread_cap())))
    thread_memo$key <- key
  }
  thread_memo$value
}

thread_memo <- new.env(parent = emptyenv())

#' @rdname get_depthwise_threads
#' @export
set_depthwise_threads <- function(n) {
  if (!is.null(n)) n <- check_count(n)
  # The old value is the count in effect before the change.
  old <- getOption("depthwise.num_threads") %||% get_depthwise_threads()
  options(depthwise.num_threads = n)
  invisible(old)
}

requested_threads <- function() {
  opt <- getOption("depthwise.num_threads")
  if (!is.null(opt)) return(check_count(opt, arg = "options(depthwise.num_threads)"))
  env <- Sys.getenv("DEPTHWISE_NUM_THREADS")
  if (nzchar(env)) {
    value <- suppressWarnings(as.numeric(env))
    return(check_count(value, arg = "DEPTHWISE_NUM_THREADS"))
  }
  cores()[["physical"]]
}

# Core counts do not change during a session; parallel::detectCores() runs
# shell commands on some systems (milliseconds), so they are looked up once.
core_counts <- new.env(parent = emptyenv())

cores <- function() {
  if (is.null(core_counts$value)) {
    count <- function(logical) {
      n <- tryCatch(parallel::detectCores(logical = logical), error = function(e) NA_integer_)
      if (length(n) != 1L || is.na(n) || n < 1L) NA_integer_ else as.integer(n)
    }
    logical <- count(TRUE)
    physical <- count(FALSE)
    if (is.na(logical)) logical <- 1L
    if (is.na(physical) || physical > logical) physical <- logical
    core_counts$value <- c(physical = physical, logical = logical)
  }
  core_counts$value
}

# The first whole number in an OMP_* variable ("4" or a list like "4,2"),
# or NA when unset or unreadable.
omp_env_count <- function(name) {
  value <- Sys.getenv(name)
  if (!nzchar(value)) return(NA_integer_)
  first <- suppressWarnings(as.numeric(strsplit(value, ",", fixed = TRUE)[[1]][1]))
  if (length(first) != 1L || is.na(first) || first < 1) NA_integer_ else as.integer(first)
}

thread_cap <- function() {
  # dw_max_threads(): the OpenMP runtime's limits as it read them at start-up;
  # the OMP_* variables are read again so that changes made in the session count.
  cap <- min(dw_max_threads(), cores()[["logical"]],
             omp_env_count("OMP_THREAD_LIMIT"), omp_env_count("OMP_NUM_THREADS"),
             na.rm = TRUE)
  limit <- Sys.getenv("_R_CHECK_LIMIT_CORES_")
  if (nzchar(limit) && !identical(toupper(limit), "FALSE")) cap <- min(cap, 2L)
  max(1L, as.integer(cap))
}

# Below this many multiply-adds a call runs on one thread: starting and
# joining a second thread costs about as much as the work it would take
# over (1- and 2-thread timings of 3x3 'same' problems of growing size).
parallel_work_threshold <- 2^18
