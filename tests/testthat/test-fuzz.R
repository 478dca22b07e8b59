# Fuzz test (harness in helper-fuzz.R). By default 1,000 seeded calls, run in
# a child R process so that a crash or a hang is reported, not fatal.
#   DEPTHWISE_FUZZ_N=20000      more calls
#   DEPTHWISE_FUZZ_SEED=7       another seed
#   DEPTHWISE_FUZZ_ONLY=123     replay one case (comma-separated for several)
#   DEPTHWISE_FUZZ_TIMEOUT=600  seconds before the child counts as hung

format_failures <- function(r, max = 10L) {
  f <- r[grepl("^FAIL", r$outcome), , drop = FALSE]
  lines <- sprintf("case %d [%s] %s\n    -> %s", f$i, f$target, f$label, substr(f$outcome, 1, 400))
  paste(c(utils::head(lines, max), if (nrow(f) > max) sprintf("... and %d more", nrow(f) - max)),
        collapse = "\n")
}

test_that("fuzzed calls end in a valid result or a classed error, never a crash or a hang", {
  skip_if_not_installed("callr")
  settings <- fuzz_settings()
  run <- fuzz_in_child(settings)
  if (!is.null(run$error)) {
    fail(paste0(
      "The fuzzing child process crashed or hung: ", conditionMessage(run$error),
      "\nCase running at the time (index, target, label): ", run$progress,
      "\nReplay it with DEPTHWISE_FUZZ_ONLY=<index> DEPTHWISE_FUZZ_SEED=", settings$seed, "."
    ))
    return(invisible())
  }
  r <- run$results
  expected_n <- if (length(settings$only)) length(settings$only) else settings$n
  expect_identical(nrow(r), as.integer(expected_n))
  failures <- sum(grepl("^FAIL", r$outcome))
  expect(failures == 0L, sprintf("%d of %d fuzzed calls failed (seed %s):\n%s", failures, nrow(r),
                                 settings$seed, format_failures(r)))
  if (length(settings$only)) return(invisible())

  # The fuzzer must reach every part of the API, and produce both valid
  # results and errors of several kinds (a fuzzer that only ever hits the
  # first argument check would pass vacuously).
  for (target in c("layer_depthwise_conv_2d", "layer_depthwise_conv_2d(object)", "layer(inputs)",
                   "build", "set_weights", "get_weights", "count_params", "keep_last_output",
                   "shape", "random_uniform", "random_normal", "initializer_draw",
                   "config_set_image_data_format", "internal dw_forward", "internal dw_output_geometry",
                   "internal dw_activate", "keras_model_sequential", "from_config")) {
    expect_true(target %in% r$target, label = paste("fuzz target", target, "was exercised"))
  }
  expect_true(any(grepl("^initializer_", setdiff(r$target, "initializer_draw"))))
  expect_true(any(grepl("^threads", r$target)))
  expect_gt(mean(r$outcome == "ok"), 0.1)
  kinds <- unique(sub("^classed ", "", r$outcome[startsWith(r$outcome, "classed")]))
  expect_true(all(c("type", "value", "shape", "size", "state", "internal") %in% kinds),
              label = paste("error kinds seen:", paste(kinds, collapse = ", ")))
  # Valid layer outputs were checked against the reference kernel.
  expect_gt(sum(r$outcome == "ok" & r$target %in% c("layer_depthwise_conv_2d", "layer(inputs)")), 20)
})

test_that("the fuzz harness itself detects a crash and a hang, and names the case", {
  skip_on_cran()
  skip_on_os("windows")
  skip_if_not_installed("callr")
  skip_if(nzchar(Sys.getenv("DEPTHWISE_CHILD_DEBUGGER")), "too slow under a debugger")
  # Replaying cases 1-3 with a case that kills its own process in the middle.
  crash <- fuzz_in_child(list(n = 3, seed = 1, timeout = 60, only = c(1, 2, 3), selftest = "crash"))
  expect_false(is.null(crash$error))
  expect_match(crash$progress, "^2\tselftest crash")
  hang <- fuzz_in_child(list(n = 3, seed = 1, timeout = 5, only = c(1, 2, 3), selftest = "hang"))
  expect_false(is.null(hang$error))
  expect_match(hang$progress, "^2\tselftest hang")
})

test_that("the harness flags unclassed errors, wrong results, warnings and unnamed arguments", {
  case <- function(run, check = function(v) TRUE, fuzzed = character()) {
    fuzz_run_case(1, fuzz_case("t", "l", run, check, fuzzed))$outcome
  }
  expect_match(case(function() stop("plain")), "^FAIL unclassed")
  expect_match(case(function() 1, function(v) "wrong"), "^FAIL invalid result: wrong")
  expect_match(case(function() { warning("w"); 1 }), "^FAIL warning")
  expect_match(case(function() abort_depthwise("`a` is bad", "value"), fuzzed = "b"), "^FAIL value error")
  expect_match(case(function() abort_depthwise("no", "internal")), "^FAIL internal error")
  expect_identical(case(function() abort_depthwise("`a` is bad", "value"), fuzzed = "a"), "classed value")
  expect_identical(case(function() 1), "ok")
})
