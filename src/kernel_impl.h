// Kernels written once against a vector wrapper V (simd.h) and compiled
// once per instruction set. The including file defines:
//   DW_NS      namespace for this instantiation (isa_base, isa_avx2, ...)
//   DW_VEC     the wrapper type
//   DW_TARGET  the function attribute that enables the instruction set
// No include guard: each kernel_isa_*.cpp includes it exactly once.
//
// Arithmetic contract (shared by every path and instruction set): an output
// starts at its bias and adds w * x for the taps in the order a (row) then b
// (column), one multiply-add per tap. A tap that falls on padding adds
// w * 0, which leaves the sum unchanged (weights are finite: the plan sends
// non-finite kernels to the reference). So the value of an output element
// does not depend on the tile, band or thread it was computed in.

#include <algorithm>
#include <cstring>
#include <vector>

#include "fast_plan.h"
#include "simd.h"

#ifndef DW_UNROLL
// Fully unrolls the small constant-count loops of the register tiles, so
// that accumulators and weights stay in registers (GCC's -O2, R's default,
// does not do it on its own). An optimisation hint only.
#if defined(__clang__)
#define DW_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && __GNUC__ >= 8
#define DW_UNROLL _Pragma("GCC unroll 64")
#else
#define DW_UNROLL
#endif
#endif

namespace depthwise {
namespace DW_NS {
namespace {

using V = DW_VEC;
using reg = V::reg;
constexpr int WD = V::width;

DW_TARGET inline reg finish(reg v, int act) {
  if (act == 1) return V::relu(v);
  if (act == 2) return V::relu6(v);
  return v;
}

DW_TARGET inline index_t clamp_index(index_t v, index_t lo, index_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// ============================================================ channels_last

struct PlanarTile {
  const double* const* cols;  // input columns by position s in the tile (zeros if outside)
  double* const* outs;        // the tile's output columns
  const index_t* off;         // per kernel row a: offset of its tap inside a column
  const double* w;            // kh * kw weights, a * kw + b
  double bias;
  index_t L;                  // output column length
  index_t valid;              // input columns hold data at [0, valid)
  index_t fb, fe;             // [fb, fe): every tap of a full vector is inside
  int act;
  int kh, kw, dw;             // runtime copies for the general kernel
};

// J output columns at once; output column k reads input column k*SW + b*DW.
template <int KH, int KW, int J, int SW, int DW>
DW_TARGET void planar_tile(const PlanarTile& t) {
  constexpr int S = (J - 1) * SW + (KW - 1) * DW + 1;
  reg wv[KH * KW];
  DW_UNROLL
  for (int q = 0; q < KH * KW; ++q) wv[q] = V::set1(t.w[q]);
  const reg bv = V::set1(t.bias);
  const double* col[S];
  DW_UNROLL
  for (int s = 0; s < S; ++s) col[s] = t.cols[s];
  double* out[J];
  DW_UNROLL
  for (int k = 0; k < J; ++k) out[k] = t.outs[k];
  index_t off[KH];
  DW_UNROLL
  for (int a = 0; a < KH; ++a) off[a] = t.off[a];
  const index_t L = t.L, fb = t.fb, fe = t.fe;
  const int act = t.act;

  index_t e = 0;
  while (e < L) {
    if (e >= fb && e + WD <= fe) {
      for (; e + WD <= fe; e += WD) {
        reg acc[J];
        DW_UNROLL
        for (int k = 0; k < J; ++k) acc[k] = bv;
        DW_UNROLL
        for (int a = 0; a < KH; ++a)
          DW_UNROLL
          for (int b = 0; b < KW; ++b)
            DW_UNROLL
            for (int k = 0; k < J; ++k)
              acc[k] = V::fmadd(wv[a * KW + b], V::load(col[k * SW + b * DW] + (e + off[a])), acc[k]);
        DW_UNROLL
        for (int k = 0; k < J; ++k) V::store(out[k] + e, finish(acc[k], act));
      }
      continue;
    }
    // A vector that touches padding or the end of the column: masked lanes.
    const index_t n = std::min<index_t>(WD, L - e);
    reg acc[J];
    DW_UNROLL
    for (int k = 0; k < J; ++k) acc[k] = bv;
    DW_UNROLL
    for (int a = 0; a < KH; ++a) {
      const index_t base = e + off[a];
      const V::mask_t mask =
          V::make_mask(clamp_index(-base, 0, n), clamp_index(t.valid - base, 0, n));
      DW_UNROLL
      for (int b = 0; b < KW; ++b)
        DW_UNROLL
        for (int k = 0; k < J; ++k)
          acc[k] = V::fmadd(wv[a * KW + b], V::load_masked(col[k * SW + b * DW] + base, mask), acc[k]);
    }
    DW_UNROLL
    for (int k = 0; k < J; ++k) V::store_lanes(out[k] + e, finish(acc[k], act), n);
    e += WD;
  }
}

// Any kernel size, stride and dilation: one output column, runtime loops.
DW_TARGET void planar_tile_general(const PlanarTile& t) {
  const int kh = t.kh, kw = t.kw, dw = t.dw;
  const reg bv = V::set1(t.bias);
  const index_t L = t.L;
  index_t e = 0;
  while (e < L) {
    if (e >= t.fb && e + WD <= t.fe) {
      for (; e + WD <= t.fe; e += WD) {
        reg acc = bv;
        for (int a = 0; a < kh; ++a) {
          const index_t o = e + t.off[a];
          for (int b = 0; b < kw; ++b)
            acc = V::fmadd(V::set1(t.w[a * kw + b]), V::load(t.cols[b * dw] + o), acc);
        }
        V::store(t.outs[0] + e, finish(acc, t.act));
      }
      continue;
    }
    const index_t n = std::min<index_t>(WD, L - e);
    reg acc = bv;
    for (int a = 0; a < kh; ++a) {
      const index_t base = e + t.off[a];
      const V::mask_t mask =
          V::make_mask(clamp_index(-base, 0, n), clamp_index(t.valid - base, 0, n));
      for (int b = 0; b < kw; ++b)
        acc = V::fmadd(V::set1(t.w[a * kw + b]), V::load_masked(t.cols[b * dw] + base, mask), acc);
    }
    V::store_lanes(t.outs[0] + e, finish(acc, t.act), n);
    e += WD;
  }
}

template <int KH, int KW, int SW, int DW>
DW_TARGET void planar_dispatch_j(const PlanarTile& t, int J) {
  switch (J) {
    case 1: planar_tile<KH, KW, 1, SW, DW>(t); return;
    case 2: planar_tile<KH, KW, 2, SW, DW>(t); return;
    case 3: planar_tile<KH, KW, 3, SW, DW>(t); return;
    case 4: planar_tile<KH, KW, 4, SW, DW>(t); return;
    case 5: planar_tile<KH, KW, 5, SW, DW>(t); return;
    default: planar_tile<KH, KW, 6, SW, DW>(t); return;
  }
}

// Kernel shapes with a specialised tile; everything else is general.
DW_TARGET bool planar_special(int kh, int kw, int sw, int dw) {
  if (!((kh == 3 && kw == 3) || (kh == 5 && kw == 5))) return false;
  return (sw == 1 && dw == 1) || (sw == 1 && dw == 2) || (sw == 2 && dw == 1);
}

DW_TARGET void planar_dispatch(const PlanarTile& t, int J, int sw) {
  const int kh = t.kh, kw = t.kw, dw = t.dw;
  if (kh == 3 && kw == 3) {
    if (sw == 1 && dw == 1) return planar_dispatch_j<3, 3, 1, 1>(t, J);
    if (sw == 1 && dw == 2) return planar_dispatch_j<3, 3, 1, 2>(t, J);
    if (sw == 2 && dw == 1) return planar_dispatch_j<3, 3, 2, 1>(t, J);
  } else if (kh == 5 && kw == 5) {
    if (sw == 1 && dw == 1) return planar_dispatch_j<5, 5, 1, 1>(t, J);
    if (sw == 1 && dw == 2) return planar_dispatch_j<5, 5, 1, 2>(t, J);
    if (sw == 2 && dw == 1) return planar_dispatch_j<5, 5, 2, 1>(t, J);
  }
  planar_tile_general(t);
}

// Copy mode: input column -> zero-padded column split into `sh` phases, so
// that padded row pr = r + pt sits at (pr % sh) * phase_len + N * (pr / sh).
DW_TARGET void pack_phase_column(const FastPlan& P, const double* src, double* dst) {
  const index_t N = P.N, H = P.H, sh = P.sh, pt = P.pt;
  const index_t rows = P.phase_len / N;  // rows per phase
  for (index_t p = 0; p < sh; ++p) {
    double* d = dst + p * P.phase_len;
    // idx is valid when 0 <= p + sh * idx - pt < H.
    index_t i0 = pt > p ? (pt - p + sh - 1) / sh : 0;
    index_t i1 = H + pt - p > 0 ? (H + pt - p + sh - 1) / sh : 0;
    i0 = std::min(i0, rows);
    i1 = std::max(std::min(i1, rows), i0);
    std::fill(d, d + N * i0, 0.0);
    std::fill(d + N * i1, d + N * rows, 0.0);
    const double* s = src + N * (p + sh * i0 - pt);
    d += N * i0;
    const index_t count = i1 - i0;
    if (N == 1) {
      for (index_t i = 0; i < count; ++i) d[i] = s[sh * i];
    } else {
      for (index_t i = 0; i < count; ++i) std::memcpy(d + N * i, s + N * sh * i, sizeof(double) * N);
    }
  }
}

DW_TARGET void run_planar_unit(const FastPlan& P, index_t plane, index_t j0, index_t j1,
                               double* scratch) {
  const Geometry& g = P.p.geometry;
  const index_t c = plane / P.M, m = plane % P.M;
  const double* in_plane = P.p.input + c * g.in_stride.c;
  double* out_plane = P.p.output + plane * g.out_stride.c;
  const int kh = P.kh, kw = P.kw, sw = P.sw, dw = P.dw;

  // Weights of this plane, then the ring of packed columns (copy mode).
  double* w = scratch;
  for (int a = 0; a < kh; ++a)
    for (int b = 0; b < kw; ++b) w[a * kw + b] = P.p.kernel[g.kernel_index(a, b, c, m)];
  index_t* tags = reinterpret_cast<index_t*>(w + kh * kw);
  for (index_t r = 0; r < P.ring; ++r) tags[r] = -1;
  double* ring = reinterpret_cast<double*>(tags + P.ring);
  const double** cols = reinterpret_cast<const double**>(ring + P.ring * P.slot);
  double* outs[8];

  const bool special = planar_special(kh, kw, sw, dw);
  PlanarTile t;
  t.cols = cols;
  t.outs = outs;
  t.off = P.off.data();
  t.w = w;
  t.bias = P.p.bias ? P.p.bias[plane] : 0.0;
  t.L = P.out_col;
  t.valid = P.valid_len;
  t.fb = P.fast_begin;
  t.fe = P.fast_end;
  t.act = P.fused_act;
  t.kh = kh;
  t.kw = kw;
  t.dw = dw;

  for (index_t j = j0; j < j1;) {
    const int J = special ? static_cast<int>(std::min<index_t>(P.jmax, j1 - j)) : 1;
    const index_t S = (J - 1) * sw + (kw - 1) * dw + 1;
    const index_t x0 = j * sw - P.pl;
    for (index_t s = 0; s < S; ++s) {
      const index_t x = x0 + s;
      if (x < 0 || x >= P.W) {
        cols[s] = P.zeros.data();
      } else if (!P.copy_mode) {
        cols[s] = in_plane + x * P.in_col;
      } else {
        const index_t r = x % P.ring;
        double* dst = ring + r * P.slot;
        if (tags[r] != x) {
          pack_phase_column(P, in_plane + x * P.in_col, dst);
          tags[r] = x;
        }
        cols[s] = dst;
      }
    }
    for (int k = 0; k < J; ++k) outs[k] = out_plane + (j + k) * P.out_col;
    if (special) planar_dispatch(t, J, sw); else planar_tile_general(t);
    if (P.span_act)
      for (int k = 0; k < J; ++k) activate_span(P.p.activation, outs[k], P.out_col);
    j += J;
  }
}

// ============================================================ channels_first

struct CfColumn {
  const double* const* cols;  // kw packed columns: Hp rows of WD lanes
  double* out;                // output row 0 of this column, first lane of the group
  index_t step;               // doubles between consecutive output rows (P_out)
  const double* w;            // kh * kw vectors of WD lanes
  const double* bias;         // WD lanes
  index_t rows;               // OH
  index_t lanes;              // valid lanes (WD except in the last group)
  int act;
  int kh, kw, sh, dh;
};

template <int KH, int KW, int J, int SH, int DH>
DW_TARGET inline void cf_tile(const double* const* col, const reg* wv, reg bv, double* out,
                              index_t step, index_t lanes, int act) {
  reg acc[J];
  DW_UNROLL
  for (int k = 0; k < J; ++k) acc[k] = bv;
  DW_UNROLL
  for (int a = 0; a < KH; ++a)
    DW_UNROLL
    for (int b = 0; b < KW; ++b)
      DW_UNROLL
      for (int k = 0; k < J; ++k)
        acc[k] = V::fmadd(wv[a * KW + b], V::load(col[b] + (k * SH + a * DH) * WD), acc[k]);
  if (lanes == WD) {
    DW_UNROLL
    for (int k = 0; k < J; ++k) V::store(out + k * step, finish(acc[k], act));
  } else {
    DW_UNROLL
    for (int k = 0; k < J; ++k) V::store_lanes(out + k * step, finish(acc[k], act), lanes);
  }
}

template <int KH, int KW, int J, int SH, int DH>
DW_TARGET void cf_column(const CfColumn& t) {
  reg wv[KH * KW];
  DW_UNROLL
  for (int q = 0; q < KH * KW; ++q) wv[q] = V::load(t.w + q * WD);
  const reg bv = V::load(t.bias);
  const double* col[KW];
  DW_UNROLL
  for (int b = 0; b < KW; ++b) col[b] = t.cols[b];
  const index_t rows = t.rows, step = t.step, lanes = t.lanes;
  const int act = t.act;
  index_t i = 0;
  for (; i + J <= rows; i += J) {
    const double* c[KW];
    DW_UNROLL
    for (int b = 0; b < KW; ++b) c[b] = col[b] + i * SH * WD;
    cf_tile<KH, KW, J, SH, DH>(c, wv, bv, t.out + i * step, step, lanes, act);
  }
  for (; i < rows; ++i) {
    const double* c[KW];
    DW_UNROLL
    for (int b = 0; b < KW; ++b) c[b] = col[b] + i * SH * WD;
    cf_tile<KH, KW, 1, SH, DH>(c, wv, bv, t.out + i * step, step, lanes, act);
  }
}

DW_TARGET void cf_column_general(const CfColumn& t) {
  const int kh = t.kh, kw = t.kw, sh = t.sh, dh = t.dh;
  const reg bv = V::load(t.bias);
  for (index_t i = 0; i < t.rows; ++i) {
    reg acc = bv;
    for (int a = 0; a < kh; ++a)
      for (int b = 0; b < kw; ++b)
        acc = V::fmadd(V::load(t.w + (a * kw + b) * WD),
                       V::load(t.cols[b] + (i * sh + a * dh) * WD), acc);
    if (t.lanes == WD) V::store(t.out + i * t.step, finish(acc, t.act));
    else V::store_lanes(t.out + i * t.step, finish(acc, t.act), t.lanes);
  }
}

template <int KH, int KW, int SH, int DH>
DW_TARGET void cf_dispatch_j(const CfColumn& t, int jmax) {
  switch (jmax) {
    case 4: cf_column<KH, KW, 4, SH, DH>(t); return;
    case 6: cf_column<KH, KW, 6, SH, DH>(t); return;
    default: cf_column<KH, KW, 8, SH, DH>(t); return;
  }
}

DW_TARGET void cf_dispatch(const CfColumn& t, int jmax) {
  if (t.kh == 3 && t.kw == 3) {
    if (t.sh == 1 && t.dh == 1) return cf_dispatch_j<3, 3, 1, 1>(t, jmax);
    if (t.sh == 2 && t.dh == 1) return cf_dispatch_j<3, 3, 2, 1>(t, jmax);
    if (t.sh == 1 && t.dh == 2) return cf_dispatch_j<3, 3, 1, 2>(t, jmax);
  } else if (t.kh == 5 && t.kw == 5) {
    if (t.sh == 1 && t.dh == 1) return cf_dispatch_j<5, 5, 1, 1>(t, jmax);
    if (t.sh == 2 && t.dh == 1) return cf_dispatch_j<5, 5, 2, 1>(t, jmax);
    if (t.sh == 1 && t.dh == 2) return cf_dispatch_j<5, 5, 1, 2>(t, jmax);
  }
  cf_column_general(t);
}

// Input column x -> Hp padded rows of WD lanes for lane group `grp`.
DW_TARGET void pack_cf_column(const FastPlan& P, index_t grp, index_t x, double* dst) {
  const index_t o0 = grp * WD;
  const index_t lanes = std::min<index_t>(WD, P.P_out - o0);
  const bool contiguous = P.contiguous[grp] != 0;
  const index_t lane0 = P.in_lane[o0];
  const double* column = P.p.input + P.P_in * P.H * x;
  const index_t r0 = std::min(P.pt, P.Hp);                  // padded rows before the input
  const index_t r1 = std::max(r0, std::min(P.Hp, P.pt + P.H));  // first padded row after it
  std::fill(dst, dst + r0 * WD, 0.0);
  std::fill(dst + r1 * WD, dst + P.Hp * WD, 0.0);
  for (index_t pr = r0; pr < r1; ++pr) {
    const double* src = column + P.P_in * (pr - P.pt);
    double* d = dst + pr * WD;
    if (contiguous && lanes == WD) {
      V::store(d, V::load(src + lane0));
    } else if (contiguous) {
      V::store(d, V::load_lanes(src + lane0, 0, lanes));
    } else {
      for (index_t l = 0; l < WD; ++l) d[l] = l < lanes ? src[P.in_lane[o0 + l]] : 0.0;
    }
  }
}

DW_TARGET void run_cf_unit(const FastPlan& P, index_t grp, index_t j0, index_t j1, double* scratch) {
  index_t* tags = reinterpret_cast<index_t*>(scratch);
  for (index_t r = 0; r < P.ring; ++r) tags[r] = -1;
  double* ring = reinterpret_cast<double*>(tags + P.ring);
  const double** cols = reinterpret_cast<const double**>(ring + P.ring * P.slot);
  const index_t o0 = grp * WD;
  CfColumn t;
  t.cols = cols;
  t.step = P.P_out;
  t.w = P.wpack.data() + grp * P.kh * P.kw * WD;
  t.bias = P.bpack.data() + grp * WD;
  t.rows = P.OH;
  t.lanes = std::min<index_t>(WD, P.P_out - o0);
  t.act = P.fused_act;
  t.kh = P.kh;
  t.kw = P.kw;
  t.sh = P.sh;
  t.dh = P.dh;
  for (index_t j = j0; j < j1; ++j) {
    for (int b = 0; b < P.kw; ++b) {
      const index_t x = j * P.sw + b * P.dw - P.pl;
      if (x < 0 || x >= P.W) {
        cols[b] = P.zeros.data();
        continue;
      }
      const index_t r = x % P.ring;
      double* dst = ring + r * P.slot;
      if (tags[r] != x) {
        pack_cf_column(P, grp, x, dst);
        tags[r] = x;
      }
      cols[b] = dst;
    }
    t.out = P.p.output + P.P_out * P.OH * j + o0;
    cf_dispatch(t, P.jmax);
    if (P.span_act)
      for (index_t i = 0; i < P.OH; ++i) activate_span(P.p.activation, t.out + i * P.P_out, t.lanes);
  }
}

}  // namespace

DW_TARGET void run_units(const FastPlan& P, index_t first, index_t last, double* scratch) {
  for (index_t u = first; u < last; ++u) {
    const index_t outer = u / P.bands, band = u % P.bands;
    const index_t j0 = band * P.band_cols;
    const index_t j1 = std::min(P.OW, j0 + P.band_cols);
    if (P.planar) run_planar_unit(P, outer, j0, j1, scratch);
    else run_cf_unit(P, outer, j0, j1, scratch);
  }
}

}  // namespace DW_NS
}  // namespace depthwise
