#include "kernels.h"

namespace depthwise {

void forward_reference(const Problem& p) {
  const Geometry& g = p.geometry;
  const index_t multiplier = g.multiplier;
  for (index_t n = 0; n < g.batch; ++n)
    for (index_t i = 0; i < g.rows.out; ++i)
      for (index_t j = 0; j < g.cols.out; ++j)
        for (index_t c = 0; c < g.channels; ++c)
          for (index_t m = 0; m < multiplier; ++m) {
            const index_t oc = c * multiplier + m;
            double sum = 0.0;
            for (index_t a = 0; a < g.rows.kernel; ++a) {
              const index_t r = i * g.rows.stride + a * g.rows.dilation - g.rows.pad_before;
              if (r < 0 || r >= g.rows.in) continue;  // zero padding
              for (index_t b = 0; b < g.cols.kernel; ++b) {
                const index_t s = j * g.cols.stride + b * g.cols.dilation - g.cols.pad_before;
                if (s < 0 || s >= g.cols.in) continue;
                const double x = p.input[n * g.in_stride.n + r * g.in_stride.h +
                                         s * g.in_stride.w + c * g.in_stride.c];
                sum += x * p.kernel[g.kernel_index(a, b, c, m)];
              }
            }
            if (p.bias) sum += p.bias[oc];
            p.output[n * g.out_stride.n + i * g.out_stride.h + j * g.out_stride.w +
                     oc * g.out_stride.c] = activate(p.activation, sum);
          }
}

}  // namespace depthwise
