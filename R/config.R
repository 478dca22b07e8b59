#' The default image data format
#'
#' `config_image_data_format()` returns the data format that layers use when
#' `data_format = NULL`: the value set in this session with
#' `config_set_image_data_format()`, else the `image_data_format` entry of the
#' Keras configuration file (`$KERAS_HOME/keras.json`, else
#' `~/.keras/keras.json`), else `"channels_last"`.
#'
#' @param data_format `"channels_last"` or `"channels_first"` (any case).
#' @returns `config_image_data_format()`: a string.
#'   `config_set_image_data_format()`: the previous value, invisibly.
#' @export
#' @examples
#' config_image_data_format()
#' old <- config_set_image_data_format("channels_first")
#' config_image_data_format()
#' config_set_image_data_format(old)
config_image_data_format <- function() {
  the$image_data_format %||% keras_json_data_format() %||% "channels_last"
}

#' @rdname config_image_data_format
#' @export
config_set_image_data_format <- function(data_format) {
  data_format <- check_choice(data_format, c("channels_last", "channels_first"))
  old <- config_image_data_format()
  the$image_data_format <- data_format
  invisible(old)
}

keras_json_path <- function() {
  home <- Sys.getenv("KERAS_HOME")
  dir <- if (nzchar(home)) home else file.path(path.expand("~"), ".keras")
  file.path(dir, "keras.json")
}

# Reads image_data_format from keras.json without a JSON dependency: the file
# is a flat object, and a malformed or absent entry falls back to the default.
keras_json_data_format <- function(path = keras_json_path()) {
  if (!file.exists(path)) return(NULL)
  text <- tryCatch(paste(readLines(path, warn = FALSE), collapse = " "), error = function(e) "")
  hit <- regmatches(text, regexec('"image_data_format"\\s*:\\s*"([A-Za-z_]+)"', text))[[1]]
  if (length(hit) < 2L) return(NULL)
  value <- tolower(hit[[2]])
  if (value %in% c("channels_last", "channels_first")) value else NULL
}
