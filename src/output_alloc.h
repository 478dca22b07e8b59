// Memory for large outputs. A fresh R vector of many megabytes gets new
// pages from the OS, and writing them the first time costs a page fault per
// 4 KiB (here ~2 GB/s, several times the convolution itself). On Linux the
// output is instead allocated through R's allocVector3() with an allocator
// that reuses the blocks of outputs R has already garbage-collected (whole,
// or a piece of a larger one), so repeated calls write into memory that is
// already mapped. Elsewhere it is
// R's ordinary allocation.
#ifndef DEPTHWISE_OUTPUT_ALLOC_H
#define DEPTHWISE_OUTPUT_ALLOC_H

#include <Rinternals.h>

#include <cstddef>

namespace depthwise {

// A double vector of length n (contents uninitialised), PROTECT-free: the
// caller protects it as with Rf_allocVector.
SEXP alloc_output(R_xlen_t n);

struct OutputCacheStats {
  double cached_bytes = 0, live_bytes = 0;
  double cached_blocks = 0, live_blocks = 0;
  double hits = 0, misses = 0, collections = 0, full_collections = 0;
  double splits = 0, joins = 0;  // hits served by a piece of a larger block; joins of a returning block with a cached neighbour
  double fault_ns_per_byte = 0, full_gc_ms = 0;  // measured costs the policy compares
  double cap_bytes = 0;
  bool enabled = false;
};

OutputCacheStats output_cache_stats();
// Returns every cached block to the OS.
void release_output_cache();
// Cache capacity in bytes (0 turns reuse off). Returns the old one.
double set_output_cache_cap(double bytes);
// Overrides the measured cost of a full collection and forgets failed
// collections (tests of the policy).
void set_full_gc_estimate(double seconds);

}  // namespace depthwise

#endif
