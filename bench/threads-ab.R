# Compares two installed builds of depthwise at 1 and 2 threads, in turn
# (this machine's timings drift too much for runs far apart to compare).
#
#   Rscript bench/threads-ab.R LIB_A LIB_B [rounds]
#
# LIB_A and LIB_B are library directories, each holding one build
# (R CMD INSTALL --preclean -l LIB .). Each round runs every build in a
# fresh R process: a 1 x 28 x 28 x 192 and a 1 x 56 x 56 x 144 layer
# (3x3, 'same'), 1500 timed calls per thread count after 50 warm-up calls;
# it prints the median µs per call.
args <- commandArgs(TRUE)
if (length(args) == 1 && args[1] == "--child") {
  library(depthwise, lib.loc = Sys.getenv("DW_AB_LIB"))
  out <- character()
  for (sh in list(c(1, 28, 28, 192), c(1, 56, 56, 144))) {
    x <- array(stats::runif(prod(sh)), sh)
    layer <- layer_depthwise_conv_2d(kernel_size = 3, padding = "same")
    for (th in 1:2) {
      set_depthwise_threads(th)
      for (i in 1:50) layer(x)
      t <- numeric(1500)
      for (i in seq_along(t)) {
        s <- Sys.time(); layer(x); t[i] <- as.numeric(Sys.time() - s) * 1e6
      }
      out <- c(out, sprintf("%dx%d %dT %4.0f", sh[2], sh[3], th, stats::median(t)))
    }
  }
  cat(paste(out, collapse = " | "), "\n")
  quit(save = "no")
}
if (length(args) < 2) stop("usage: Rscript bench/threads-ab.R LIB_A LIB_B [rounds]", call. = FALSE)
libs <- args[1:2]
rounds <- if (length(args) >= 3) as.integer(args[3]) else 3L
self <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
rscript <- file.path(R.home("bin"), "Rscript")
for (r in seq_len(rounds)) {
  for (lib in libs) {
    res <- system2(rscript, c(shQuote(self), "--child"), stdout = TRUE, env = paste0("DW_AB_LIB=", shQuote(lib)))
    cat(sprintf("round %d %-30s %s\n", r, lib, paste(res, collapse = " ")))
  }
}
