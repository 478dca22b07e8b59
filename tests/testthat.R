library(testthat)
library(depthwise)

test_check("depthwise")
