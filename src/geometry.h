// The one place where depthwise convolution shapes, paddings and memory
// strides are worked out. Everything else (kernels, the R-facing
// output-shape helper) asks this file.
#ifndef DEPTHWISE_GEOMETRY_H
#define DEPTHWISE_GEOMETRY_H

#include <cstdint>
#include <stdexcept>
#include <string>

namespace depthwise {

// 64-bit on every platform R supports; matches R_xlen_t on 64-bit builds.
using index_t = std::int64_t;

// R's largest long vector (R_XLEN_T_MAX = 2^52); outputs above it cannot exist.
constexpr index_t max_vector_length = index_t(4503599627370496LL);

enum class Padding : int { valid = 0, same = 1 };

// Thrown for any argument the R layer should have rejected already: the
// R wrapper turns it into a classed condition instead of a crash.
struct geometry_error : std::invalid_argument {
  explicit geometry_error(const std::string& what) : std::invalid_argument(what) {}
};

inline index_t checked_mul(index_t a, index_t b) {
  index_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw geometry_error("size overflow");
  return r;
}

inline index_t checked_add(index_t a, index_t b) {
  index_t r;
  if (__builtin_add_overflow(a, b, &r)) throw geometry_error("size overflow");
  return r;
}

// One spatial axis: sizes plus TensorFlow's padding rule ('same' puts the odd
// extra pixel after, i.e. at the bottom/right).
struct Axis {
  index_t in = 0, kernel = 1, stride = 1, dilation = 1;
  index_t out = 0, pad_before = 0, pad_after = 0;

  index_t effective_kernel() const {
    return checked_add(checked_mul(kernel - 1, dilation), 1);
  }
};

inline Axis resolve_axis(index_t in, index_t kernel, index_t stride,
                         index_t dilation, Padding padding) {
  if (in < 0 || kernel < 1 || stride < 1 || dilation < 1)
    throw geometry_error("axis sizes must be positive");
  Axis a;
  a.in = in;
  a.kernel = kernel;
  a.stride = stride;
  a.dilation = dilation;
  const index_t span = a.effective_kernel();
  if (padding == Padding::same) {
    a.out = (in + stride - 1) / stride;  // ceil(in / stride)
    const index_t needed = checked_add(checked_mul(a.out > 0 ? a.out - 1 : 0, stride), span) - in;
    const index_t total = needed > 0 ? needed : 0;
    a.pad_before = total / 2;
    a.pad_after = total - a.pad_before;
  } else {
    a.out = in >= span ? (in - span) / stride + 1 : 0;
  }
  return a;
}

// Element strides of a 4-D R array (column-major) addressed by logical
// (batch, row, column, channel) indices, whatever the data format.
struct Strides {
  index_t n = 0, h = 0, w = 0, c = 0;
};

// channels_last dims (N, H, W, C) or channels_first dims (N, C, H, W).
inline Strides column_major_strides(index_t n, index_t h, index_t w, index_t c,
                                    bool channels_first) {
  Strides s;
  s.n = 1;
  if (channels_first) {
    s.c = n;
    s.h = checked_mul(n, c);
    s.w = checked_mul(s.h, h);
  } else {
    s.h = n;
    s.w = checked_mul(n, h);
    s.c = checked_mul(s.w, w);
  }
  return s;
}

struct Geometry {
  index_t batch = 0, channels = 0, multiplier = 1;
  Axis rows, cols;
  bool channels_first = false;
  Strides in_stride, out_stride;

  index_t out_channels() const { return checked_mul(channels, multiplier); }
  index_t in_size() const {
    return checked_mul(checked_mul(checked_mul(batch, rows.in), cols.in), channels);
  }
  index_t out_size() const {
    return checked_mul(checked_mul(checked_mul(batch, rows.out), cols.out), out_channels());
  }
  index_t kernel_size() const {
    return checked_mul(checked_mul(rows.kernel, cols.kernel), out_channels());
  }
  // dim() of the output array in the data format's order.
  void out_dims(index_t dims[4]) const {
    dims[0] = batch;
    if (channels_first) {
      dims[1] = out_channels(); dims[2] = rows.out; dims[3] = cols.out;
    } else {
      dims[1] = rows.out; dims[2] = cols.out; dims[3] = out_channels();
    }
  }
  // Kernel element (a, b, c, m) of the Keras (kh, kw, C, M) array.
  index_t kernel_index(index_t a, index_t b, index_t c, index_t m) const {
    return a + rows.kernel * (b + cols.kernel * (c + channels * m));
  }
};

// in_dims: dim() of the input array in the data format's order.
inline Geometry make_geometry(const index_t in_dims[4], index_t kernel_h, index_t kernel_w,
                              index_t stride_h, index_t stride_w, index_t dilation_h,
                              index_t dilation_w, Padding padding, index_t multiplier,
                              bool channels_first) {
  for (int i = 0; i < 4; ++i)
    if (in_dims[i] < 0) throw geometry_error("negative dimension");
  if (multiplier < 1) throw geometry_error("depth_multiplier must be positive");
  Geometry g;
  g.channels_first = channels_first;
  g.batch = in_dims[0];
  const index_t in_h = channels_first ? in_dims[2] : in_dims[1];
  const index_t in_w = channels_first ? in_dims[3] : in_dims[2];
  g.channels = channels_first ? in_dims[1] : in_dims[3];
  g.multiplier = multiplier;
  g.rows = resolve_axis(in_h, kernel_h, stride_h, dilation_h, padding);
  g.cols = resolve_axis(in_w, kernel_w, stride_w, dilation_w, padding);
  g.in_stride = column_major_strides(g.batch, in_h, in_w, g.channels, channels_first);
  g.out_stride = column_major_strides(g.batch, g.rows.out, g.cols.out, g.out_channels(),
                                      channels_first);
  if (g.in_size() > max_vector_length || g.out_size() > max_vector_length)
    throw geometry_error("size exceeds R's maximum vector length");
  return g;
}

}  // namespace depthwise

#endif
