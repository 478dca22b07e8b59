// Keras 3 activations. Element-wise ones are fused into the kernels (applied
// to a finished output span while it is still in cache); softmax and
// log_softmax need a whole axis and run as a separate pass.
#ifndef DEPTHWISE_ACTIVATION_H
#define DEPTHWISE_ACTIVATION_H

#include <cmath>
#include <cstddef>

#include "geometry.h"

namespace depthwise {

// The order is the contract with R: R reads the names by position from
// activation_names() below (exported as dw_activation_names()).
enum class Activation : int {
  linear = 0, relu, relu6, sigmoid, hard_sigmoid, tanh, elu, selu, softplus,
  softsign, silu, gelu, exponential, leaky_relu, mish, hard_silu,
  softmax, log_softmax,
  count
};

inline const char* const* activation_names() {
  static const char* const names[] = {
      "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "elu", "selu",
      "softplus", "softsign", "silu", "gelu", "exponential", "leaky_relu", "mish",
      "hard_silu", "softmax", "log_softmax"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<std::size_t>(Activation::count),
                "activation names out of sync");
  return names;
}

inline bool is_axis_activation(Activation a) {
  return a == Activation::softmax || a == Activation::log_softmax;
}

// Written so that NaN goes in and NaN comes out: comparisons are arranged so
// a NaN input takes the branch that returns an expression of the input.
inline double sigmoid(double v) {
  if (v >= 0) return 1.0 / (1.0 + std::exp(-v));
  const double e = std::exp(v);
  return e / (1.0 + e);
}

inline double softplus(double v) {
  return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
}

inline double hard_sigmoid(double v) {
  const double r = v + 3.0;
  return (r < 0 ? 0.0 : (r > 6.0 ? 6.0 : r)) / 6.0;
}

inline double activate(Activation a, double v) {
  constexpr double selu_alpha = 1.6732632423543772848170429916717;
  constexpr double selu_scale = 1.0507009873554804934193349852946;
  constexpr double inv_sqrt2 = 0.70710678118654752440084436210485;
  switch (a) {
    case Activation::relu: return v < 0 ? 0.0 : v;
    case Activation::relu6: return v < 0 ? 0.0 : (v > 6.0 ? 6.0 : v);
    case Activation::sigmoid: return sigmoid(v);
    case Activation::hard_sigmoid: return hard_sigmoid(v);
    case Activation::tanh: return std::tanh(v);
    case Activation::elu: return v > 0 ? v : std::expm1(v);
    case Activation::selu: return selu_scale * (v > 0 ? v : selu_alpha * std::expm1(v));
    case Activation::softplus: return softplus(v);
    case Activation::softsign: return v / (1.0 + std::fabs(v));
    case Activation::silu: return v * sigmoid(v);
    case Activation::gelu: return 0.5 * v * (1.0 + std::erf(v * inv_sqrt2));
    case Activation::exponential: return std::exp(v);
    case Activation::leaky_relu: return v < 0 ? 0.2 * v : v;
    case Activation::mish: return v * std::tanh(softplus(v));
    case Activation::hard_silu: return v * hard_sigmoid(v);
    default: return v;  // linear; axis activations are applied elsewhere
  }
}

// Applies an element-wise activation to a contiguous span. The switch sits
// outside the loop so the cheap cases (relu, relu6) vectorise.
inline void activate_span(Activation a, double* p, index_t n) {
  switch (a) {
    case Activation::linear:
    case Activation::softmax:
    case Activation::log_softmax:
      return;
    case Activation::relu:
      for (index_t i = 0; i < n; ++i) p[i] = p[i] < 0 ? 0.0 : p[i];
      return;
    case Activation::relu6:
      for (index_t i = 0; i < n; ++i) p[i] = p[i] < 0 ? 0.0 : (p[i] > 6.0 ? 6.0 : p[i]);
      return;
    default:
      for (index_t i = 0; i < n; ++i) p[i] = activate(a, p[i]);
  }
}

// Softmax / log-softmax over one axis of `count` elements spaced `stride`
// apart, as Keras does over the last axis.
inline void softmax_axis(double* p, index_t count, index_t stride, bool log_form) {
  if (count <= 0) return;
  double mx = p[0];
  for (index_t k = 1; k < count; ++k) {
    const double v = p[k * stride];
    if (v > mx || std::isnan(v)) mx = v;
  }
  double sum = 0.0;
  for (index_t k = 0; k < count; ++k) sum += std::exp(p[k * stride] - mx);
  if (log_form) {
    const double log_sum = std::log(sum);
    for (index_t k = 0; k < count; ++k) p[k * stride] = p[k * stride] - mx - log_sum;
  } else {
    for (index_t k = 0; k < count; ++k) p[k * stride] = std::exp(p[k * stride] - mx) / sum;
  }
}

// Applies softmax/log_softmax over the last axis of a 4-D column-major array.
inline void activate_last_axis(Activation a, double* out, const index_t dims[4]) {
  if (!is_axis_activation(a)) return;
  const index_t lead = dims[0] * dims[1] * dims[2];
  const bool log_form = a == Activation::log_softmax;
  for (index_t i = 0; i < lead; ++i) softmax_axis(out + i, dims[3], lead, log_form);
}

}  // namespace depthwise

#endif
