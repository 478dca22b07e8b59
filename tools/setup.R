# One-command set-up: installs everything depthwise needs (tools/install-deps.R),
# installs the package from this checkout, and runs its main job
# (inst/examples/tour.R: the seed example and a tour of the layer).
#
# Usage: Rscript tools/setup.R   (from the repository root)

if (!file.exists("DESCRIPTION")) stop("Run this from the root of the depthwise repository.", call. = FALSE)
source("tools/install-deps.R", local = new.env())

lib <- .libPaths()[1]
if (file.access(lib, 2) != 0) {
  lib <- Sys.getenv("R_LIBS_USER")
  dir.create(lib, recursive = TRUE, showWarnings = FALSE)
}
r <- file.path(R.home("bin"), "R")
status <- system2(r, c("CMD", "INSTALL", "--no-multiarch", "--preclean", paste0("--library=", shQuote(lib)), "."))
if (status != 0) stop("R CMD INSTALL failed.", call. = FALSE)

rscript <- file.path(R.home("bin"), "Rscript")
status <- system2(rscript, c("-e", shQuote(sprintf(".libPaths(c(%s, .libPaths())); source('inst/examples/tour.R', echo = FALSE)",
                                                 deparse(lib)))))
if (status != 0) stop("The main job failed.", call. = FALSE)
