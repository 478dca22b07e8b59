#' Threads used by the convolution kernels
#'
#' The kernels split work across output channels with OpenMP. The thread
#' count comes from, in order: `set_depthwise_threads()` /
#' `options(depthwise.num_threads =)`, the environment variable
#' `DEPTHWISE_NUM_THREADS`, else the number of physical cores. It is always
#' capped by the OpenMP limits (`OMP_THREAD_LIMIT`, `OMP_NUM_THREADS`), by the
#' number of cores, and at 2 while `R CMD check` runs (CRAN policy). Small
#' problems run on one thread whatever the setting, since starting threads
#' would cost more than it saves. Results are identical at every thread count.
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
  requested <- requested_threads()
  as.integer(max(1L, min(requested, thread_cap())))
}

#' @rdname get_depthwise_threads
#' @export
set_depthwise_threads <- function(n) {
  if (!is.null(n)) n <- check_count(n)
  old <- getOption("depthwise.num_threads")
  options(depthwise.num_threads = n)
  invisible(old %||% get_depthwise_threads())
}

requested_threads <- function() {
  opt <- getOption("depthwise.num_threads")
  if (!is.null(opt)) return(check_count(opt, arg = "options(depthwise.num_threads)"))
  env <- Sys.getenv("DEPTHWISE_NUM_THREADS")
  if (nzchar(env)) {
    value <- suppressWarnings(as.numeric(env))
    return(check_count(value, arg = "DEPTHWISE_NUM_THREADS"))
  }
  physical_cores()
}

physical_cores <- function() {
  n <- tryCatch(parallel::detectCores(logical = FALSE), error = function(e) NA_integer_)
  if (is.na(n) || n < 1L) n <- tryCatch(parallel::detectCores(), error = function(e) 1L)
  if (is.na(n) || n < 1L) 1L else as.integer(n)
}

thread_cap <- function() {
  cap <- min(dw_max_threads(), max(1L, parallel::detectCores(logical = TRUE), na.rm = TRUE))
  if (nzchar(Sys.getenv("_R_CHECK_LIMIT_CORES_")) &&
      !identical(toupper(Sys.getenv("_R_CHECK_LIMIT_CORES_")), "FALSE")) {
    cap <- min(cap, 2L)
  }
  cap
}

# Below this many multiply-adds a call runs on one thread.
parallel_work_threshold <- 2^17

threads_for_work <- function(work) {
  if (work < parallel_work_threshold) 1L else get_depthwise_threads()
}
