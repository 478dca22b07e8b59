// The first fast kernel: one output plane at a time, an Eigen axpy per
// kernel tap. dw_forward() no longer uses it (see kernel_fast.cpp and
// fast_plan.h); it stays for callers of forward_fast_planes() and as an
// independent implementation the tests compare against.
#include <Eigen/Core>

#include "kernels.h"

namespace depthwise {
namespace {

// First and one-past-last output index i whose input index
// i * stride + offset falls inside [0, in_size), clipped to [0, out_size).
struct Range {
  index_t begin, end;
};

Range valid_outputs(index_t offset, index_t stride, index_t in_size, index_t out_size) {
  index_t begin = 0;
  if (offset < 0) begin = (-offset + stride - 1) / stride;
  const index_t last_in = in_size - 1 - offset;  // largest allowed i * stride
  index_t end = last_in < 0 ? 0 : last_in / stride + 1;
  if (end > out_size) end = out_size;
  if (begin > end) begin = end;
  return {begin, end};
}

// y += w * x over n contiguous doubles. Eigen gives a vectorised loop at
// R's default baseline flags, where GCC's -O2 would not vectorise this.
inline void axpy(index_t n, double w, const double* x, double* y) {
  Eigen::Map<Eigen::VectorXd>(y, n).noalias() += w * Eigen::Map<const Eigen::VectorXd>(x, n);
}

inline void fill(index_t n, double v, double* y) {
  for (index_t k = 0; k < n; ++k) y[k] = v;
}

}  // namespace

// Works one output channel plane at a time. In both layouts the batch index
// is the fastest-moving one, so the innermost loop runs over contiguous
// memory; for channels_last with row stride 1, batch and rows merge into one
// contiguous run per output column, so a whole column is one axpy per tap.
void forward_fast_planes(const Problem& p, index_t first_plane, index_t last_plane) {
  const Geometry& g = p.geometry;
  const Axis& rows = g.rows;
  const Axis& cols = g.cols;
  const index_t batch = g.batch;
  const index_t multiplier = g.multiplier;
  const bool merged_rows = !g.channels_first && rows.stride == 1;

  for (index_t plane = first_plane; plane < last_plane; ++plane) {
    const index_t c = plane / multiplier;
    const index_t m = plane % multiplier;
    const double* in_plane = p.input + c * g.in_stride.c;
    double* out_plane = p.output + plane * g.out_stride.c;
    const double bias = p.bias ? p.bias[plane] : 0.0;

    for (index_t j = 0; j < cols.out; ++j) {
      double* out_col = out_plane + j * g.out_stride.w;
      if (merged_rows) {
        fill(batch * rows.out, bias, out_col);
      } else {
        for (index_t i = 0; i < rows.out; ++i) fill(batch, bias, out_col + i * g.out_stride.h);
      }
      for (index_t b = 0; b < cols.kernel; ++b) {
        const index_t s = j * cols.stride + b * cols.dilation - cols.pad_before;
        if (s < 0 || s >= cols.in) continue;  // zero padding contributes nothing
        const double* in_col = in_plane + s * g.in_stride.w;
        for (index_t a = 0; a < rows.kernel; ++a) {
          const double w = p.kernel[g.kernel_index(a, b, c, m)];
          const index_t offset = a * rows.dilation - rows.pad_before;
          const Range r = valid_outputs(offset, rows.stride, rows.in, rows.out);
          if (r.begin >= r.end) continue;
          if (merged_rows) {
            axpy(batch * (r.end - r.begin), w, in_col + batch * (r.begin + offset),
                 out_col + batch * r.begin);
          } else {
            for (index_t i = r.begin; i < r.end; ++i)
              axpy(batch, w, in_col + (i * rows.stride + offset) * g.in_stride.h,
                   out_col + i * g.out_stride.h);
          }
        }
      }
      if (merged_rows) {
        activate_span(p.activation, out_col, batch * rows.out);
      } else {
        for (index_t i = 0; i < rows.out; ++i)
          activate_span(p.activation, out_col + i * g.out_stride.h, batch);
      }
    }
  }
}

}  // namespace depthwise
