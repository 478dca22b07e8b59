// Forward-pass kernels. The reference kernel is the oracle: one loop nest
// that reads like the formula. The fast kernels must agree with it to 1e-12
// relative and give identical results at any thread count.
#ifndef DEPTHWISE_KERNELS_H
#define DEPTHWISE_KERNELS_H

#include <cstddef>

#include "activation.h"
#include "geometry.h"

namespace depthwise {

// Outputs of this many bytes and more come from the recycling allocator
// (output_alloc.h), whose blocks R freed many calls ago: their lines are
// not in any cache when the kernels write them.
constexpr std::size_t cold_output_bytes = std::size_t(128) << 10;

struct Problem {
  Geometry geometry;
  const double* input = nullptr;   // dim() in the data format's order
  const double* kernel = nullptr;  // Keras (kh, kw, C, M)
  const double* bias = nullptr;    // length C * M, or nullptr for no bias
  double* output = nullptr;
  Activation activation = Activation::linear;
};

// Plain loop nest over the formula; element-wise activation included, axis
// activations (softmax) left to the caller.
void forward_reference(const Problem& p);

// Optimised forward pass over output channels [first_plane, last_plane)
// (plane = output channel, c * M + m). Safe to call from several threads on
// disjoint ranges. Axis activations are left to the caller.
void forward_fast_planes(const Problem& p, index_t first_plane, index_t last_plane);

}  // namespace depthwise

#endif
