# Installs what depthwise needs to build, test and check: the R packages in
# DESCRIPTION (Imports, LinkingTo, Suggests) and pandoc for the vignette.
# Uses Debian's prebuilt r-cran-* packages when running as root on a Debian
# system (fast, no compilation), and otherwise R's own install.packages()
# from the repositories this R installation is configured with.
#
# Usage: Rscript tools/install-deps.R   (from the repository root)

desc_packages <- function(path = "DESCRIPTION") {
  d <- read.dcf(path, fields = c("Imports", "LinkingTo", "Suggests", "Depends"))
  deps <- unlist(strsplit(paste(na.omit(d[1, ]), collapse = ","), ","))
  deps <- trimws(sub("\\(.*\\)", "", deps))
  setdiff(deps[nzchar(deps)], c("R", rownames(installed.packages(priority = "base"))))
}

missing_packages <- function(pkgs) {
  pkgs[!vapply(pkgs, requireNamespace, logical(1), quietly = TRUE)]
}

can_apt <- function() {
  nzchar(Sys.which("apt-get")) && identical(Sys.info()[["effective_user"]], "root") &&
    file.exists("/etc/debian_version")
}

apt_install <- function(debs) {
  if (!length(debs)) return(invisible(TRUE))
  env <- "DEBIAN_FRONTEND=noninteractive"
  status <- system2("apt-get", c("install", "-y", "-q", "--no-install-recommends", debs), env = env)
  if (status != 0) {
    system2("apt-get", c("update", "-q"), env = env)
    status <- system2("apt-get", c("install", "-y", "-q", "--no-install-recommends", debs), env = env)
  }
  invisible(status == 0)
}

need <- missing_packages(desc_packages())
need_pandoc <- !nzchar(Sys.which("pandoc"))
# Tools R CMD check --as-cran uses for full checks of the manual and PDFs.
need_tools <- c("tidy", "qpdf")[!nzchar(Sys.which(c("tidy", "qpdf")))]

if (can_apt() && (length(need) || need_pandoc || length(need_tools))) {
  debs <- c(paste0("r-cran-", tolower(need)), if (need_pandoc) "pandoc", need_tools)
  # One at a time so a name Debian lacks does not block the others.
  for (deb in debs) apt_install(deb)
  need <- missing_packages(need)
}

if (length(need)) {
  repos <- getOption("repos")
  if (!length(repos) || all(repos == "@CRAN@")) {
    stop("No package repository is configured (getOption('repos')); set one, then rerun. ",
         "Missing: ", paste(need, collapse = ", "), call. = FALSE)
  }
  message("Installing from the configured repositories: ", paste(need, collapse = ", "))
  lib <- .libPaths()[1]
  if (file.access(lib, 2) != 0) {
    lib <- Sys.getenv("R_LIBS_USER")
    dir.create(lib, recursive = TRUE, showWarnings = FALSE)
    .libPaths(c(lib, .libPaths()))
  }
  install.packages(need, lib = lib, repos = repos)
  still <- missing_packages(need)
  if (length(still)) stop("Could not install: ", paste(still, collapse = ", "), call. = FALSE)
}

if (!nzchar(Sys.which("pandoc"))) {
  message("Note: pandoc is not available, so the vignette cannot be built; ",
          "the package and its tests do not need it.")
}
message("All dependencies of depthwise are installed.")
