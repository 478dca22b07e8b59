# Thread settings: get/set, option, environment, OpenMP limits, R CMD check
# cap, small-work rule.

test_that("set_depthwise_threads() sets the option and returns the old value invisibly", {
  withr::local_options(depthwise.num_threads = NULL)
  withr::local_envvar(DEPTHWISE_NUM_THREADS = NA, OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA,
                      `_R_CHECK_LIMIT_CORES_` = NA)
  default <- get_depthwise_threads()
  expect_gte(default, 1L)
  expect_invisible(old <- set_depthwise_threads(1))
  expect_identical(old, default)
  expect_identical(getOption("depthwise.num_threads"), 1L)
  expect_identical(get_depthwise_threads(), 1L)
  expect_identical(set_depthwise_threads(NULL), 1L)
  expect_null(getOption("depthwise.num_threads"))
  expect_identical(get_depthwise_threads(), default)
})

test_that("the default is the number of physical cores, capped by the OpenMP limit", {
  withr::local_options(depthwise.num_threads = NULL)
  withr::local_envvar(DEPTHWISE_NUM_THREADS = NA, OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA,
                      `_R_CHECK_LIMIT_CORES_` = NA)
  physical <- parallel::detectCores(logical = FALSE)
  if (is.na(physical)) physical <- parallel::detectCores()
  expect_identical(get_depthwise_threads(), as.integer(max(1L, min(physical, dw_max_threads()))))
})

test_that("options(), then the environment variable, choose the count; both are validated", {
  withr::local_envvar(DEPTHWISE_NUM_THREADS = "1", OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA,
                      `_R_CHECK_LIMIT_CORES_` = NA)
  withr::local_options(depthwise.num_threads = NULL)
  expect_identical(get_depthwise_threads(), 1L)
  withr::local_options(depthwise.num_threads = 1L)
  expect_identical(get_depthwise_threads(), 1L)
  withr::local_options(depthwise.num_threads = 0)
  expect_error(get_depthwise_threads(), class = "depthwise_error_value")
  withr::local_options(depthwise.num_threads = NULL)
  withr::local_envvar(DEPTHWISE_NUM_THREADS = "lots")
  expect_error(get_depthwise_threads(), class = "depthwise_error")
  expect_error(set_depthwise_threads(-1), class = "depthwise_error_value")
  expect_error(set_depthwise_threads("two"), class = "depthwise_error_type")
})

test_that("requests above the caps are reduced: cores, OMP_THREAD_LIMIT, OMP_NUM_THREADS, R CMD check", {
  withr::local_options(depthwise.num_threads = 64L)
  withr::local_envvar(DEPTHWISE_NUM_THREADS = NA, OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA,
                      `_R_CHECK_LIMIT_CORES_` = NA)
  logical <- parallel::detectCores(logical = TRUE)
  expect_lte(get_depthwise_threads(), logical)
  expect_lte(get_depthwise_threads(), dw_max_threads())
  withr::with_envvar(c(OMP_THREAD_LIMIT = "1"), expect_identical(get_depthwise_threads(), 1L))
  withr::with_envvar(c(OMP_NUM_THREADS = "1,2"), expect_identical(get_depthwise_threads(), 1L))
  withr::with_envvar(c(OMP_NUM_THREADS = "junk"), expect_gte(get_depthwise_threads(), 1L))
  withr::with_envvar(c(`_R_CHECK_LIMIT_CORES_` = "TRUE"), expect_lte(get_depthwise_threads(), 2L))
  withr::with_envvar(c(`_R_CHECK_LIMIT_CORES_` = "false"),
                     expect_identical(get_depthwise_threads(), as.integer(min(64L, logical, dw_max_threads()))))
})

test_that("small work runs on one thread, large work on the setting", {
  withr::local_options(depthwise.num_threads = 2L)
  withr::local_envvar(OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA, `_R_CHECK_LIMIT_CORES_` = NA)
  single_thread <- function(dims, kernel_size = 3) {
    layer <- layer_depthwise_conv_2d(kernel_size = kernel_size, padding = "same")
    layer(array(0, dims))
    layer_state(layer)$call_memo$single_thread
  }
  # Multiply-adds: the seed shape 4 * 10 * 10 * 12 * 9 = 43,200; a 1x1 kernel
  # on 64 x 64 x 64 is 2^18 exactly, the first count that may use threads.
  expect_true(single_thread(c(4, 10, 10, 12)))
  expect_true(single_thread(c(1, 64, 64, 63), kernel_size = 1))
  expect_false(single_thread(c(1, 64, 64, 64), kernel_size = 1))
  expect_false(single_thread(c(1, 64, 64, 8), kernel_size = 3))
  # Large work reads the setting (and rejects a bad one); small work does not.
  withr::local_options(depthwise.num_threads = "many")
  expect_error(layer_depthwise_conv_2d(array(0, c(1, 64, 64, 8)), 3, padding = "same"), class = "depthwise_error")
  expect_identical(dim(layer_depthwise_conv_2d(array(0, c(4, 10, 10, 12)), 3, padding = "same")), c(4L, 10L, 10L, 12L))
})

test_that("a layer gives the same numbers whatever the thread setting", {
  withr::local_envvar(OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA, `_R_CHECK_LIMIT_CORES_` = NA)
  set.seed(5)
  x <- array(rnorm(2 * 40 * 40 * 16), c(2, 40, 40, 16))
  layer <- layer_depthwise_conv_2d(kernel_size = 3, padding = "same", depth_multiplier = 2)
  y1 <- withr::with_options(list(depthwise.num_threads = 1L), layer(x))
  y2 <- withr::with_options(list(depthwise.num_threads = 2L), layer(x))
  expect_identical(y1, y2)
})

test_that("threads start once and are reused; a forked child runs layers without hanging", {
  skip_on_os("windows")
  withr::local_envvar(OMP_THREAD_LIMIT = NA, OMP_NUM_THREADS = NA, `_R_CHECK_LIMIT_CORES_` = NA)
  withr::local_options(depthwise.num_threads = 2L)
  skip_if(get_depthwise_threads() < 2L, "one core: no worker threads to test")
  set.seed(11)
  x <- array(rnorm(1 * 56 * 56 * 64), c(1, 56, 56, 64))
  layer <- layer_depthwise_conv_2d(kernel_size = 3, padding = "same")
  y <- layer(x)  # large enough for 2 threads: starts the worker
  expect_identical(dw_thread_pool_workers(), 1L)
  expect_identical(layer(x), y)
  expect_identical(dw_thread_pool_workers(), 1L)
  # OpenMP's workers do not survive fork(): a child that used them hung
  # (parallel::mclapply). The child must run the layer on its own thread.
  job <- parallel::mcparallel(list(same = identical(layer(x), y), workers = dw_thread_pool_workers()))
  res <- parallel::mccollect(job, wait = FALSE, timeout = 60)
  if (is.null(res)) {
    tools::pskill(job$pid)
    parallel::mccollect(job)
    fail("the forked child did not finish within 60 s")
  } else {
    expect_true(res[[1]]$same)
    expect_identical(res[[1]]$workers, 0L)
  }
  expect_identical(layer(x), y)
})
