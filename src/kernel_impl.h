// Kernels written once against a vector wrapper V (simd.h) and compiled
// once per instruction set. The including file defines:
//   DW_NS      namespace for this instantiation (isa_base, isa_avx2, ...)
//   DW_VEC     the wrapper type
//   DW_TARGET  the function attribute that enables the instruction set
// No include guard: each kernel_isa_*.cpp includes it exactly once.
//
// Arithmetic contract (shared by every instruction set): an output starts
// at its bias and adds w * x for the taps one multiply-add per tap, in the
// order a (row) then b (column); the direct channels_first tiles go b then
// a (see cf_direct_step()), in all their loops. Which kind of path an
// element takes depends only on the problem and its position (border rows,
// kernel shape), never on the tiling. A tap that falls on padding adds
// w * 0 (weights are finite: the plan sends non-finite kernels to the
// reference), or is skipped where a whole padding row is (channels_first
// tiles over border rows, as in the reference); either way the sum keeps its
// value. So the value of an output element does not depend on the tile,
// band or thread it was computed in.

#include <algorithm>
#include <cstdint>
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
  const double* w;            // kh * kw weights, a + kh * b (the Keras array's order)
  double* wtab;               // room for kh * kw broadcast weight vectors
  double bias;
  index_t L;                  // output column length
  index_t valid;              // input columns hold data at [0, valid)
  index_t fb, fe;             // [fb, fe): every tap of a full vector is inside
  bool whole;                 // FastPlan::whole_vectors
  bool stream;                // FastPlan::out_stream
  // Input columns the next tile reads first (next_n of them, next_len
  // doubles each): the full steps prefetch them, a slice per step, so that
  // the next tile's first loads do not wait on memory.
  const double* const* next;
  int next_n;
  index_t next_len;
  int act;
  int kh, kw, dw;             // runtime copies for the general kernel
};

// Feeds input vectors x (tile column s, kernel row a) to every output
// column k that reads them: tap (a, b) with s == k * SW + b * DW.
template <int KW, int J, int SW, int DW, int VN, bool RESIDENT>
DW_TARGET inline void planar_feed(reg (&acc)[VN][J], const reg (&x)[VN], int a, int s, const reg* wres,
                                  const double* wtab) {
  DW_UNROLL
  for (int k = 0; k < J; ++k) {
    const int bs = s - k * SW;  // b * DW for output column k
    if (bs < 0 || bs % DW != 0 || bs / DW >= KW) continue;
    const int q = a * KW + bs / DW;
    const reg w = RESIDENT ? wres[q] : V::load(wtab + q * WD);
    DW_UNROLL
    for (int h = 0; h < VN; ++h) acc[h][k] = V::fmadd(w, x[h], acc[h][k]);
  }
}

// Prefetches `doubles` from `from` doubles past `p`, for writing (output,
// FastPlan::out_prefetch) or for reading (input, FastPlan::in_prefetch).
// The region may run past the array's end, so its addresses are formed as
// integers (no out-of-bounds pointer); a prefetch never faults.
template <bool WRITE>
DW_TARGET inline void prefetch_lines(const double* p, index_t from, index_t doubles) {
  const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(p) + sizeof(double) * static_cast<std::uintptr_t>(from);
  const std::uintptr_t end = start + sizeof(double) * static_cast<std::uintptr_t>(doubles);
  for (std::uintptr_t a = start; a < end; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a), WRITE, 3);
}

// The next slice (step doubles from pf on) of the next tile's input
// columns (PlanarTile::next), until pf reaches end.
DW_TARGET inline void prefetch_next_slice(const PlanarTile& t, index_t& pf, index_t end, index_t step) {
  if (pf < end) {
    for (int k = 0; k < t.next_n; ++k) prefetch_lines<false>(t.next[k], pf, step);
    pf += step;
  }
}

// Broadcast weight vectors for a planar tile, q = a * KW + b, from the
// Keras order (tap (a, b) at a + KH * b); also written to wtab when they
// do not stay in registers (RESIDENT false).
template <int KH, int KW, bool RESIDENT>
DW_TARGET inline void planar_weights(const double* w, reg (&wres)[KH * KW], double* wtab) {
  DW_UNROLL
  for (int q = 0; q < KH * KW; ++q) {
    wres[q] = V::set1(w[(q % KW) * KH + q / KW]);
    if (!RESIDENT) V::store(wtab + q * WD, wres[q]);
  }
}

// How a planar step reads its input vectors.
enum PlanarLoad : int {
  planar_full = 0,    // every tap inside the column
  planar_masked = 1,  // one vector touching padding or the column's end
  planar_whole = 2,   // vectors wholly inside or wholly padding (FastPlan::whole_vectors)
};

// One step down the J output columns of a tile: VN vectors down each
// (J * VN independent accumulators, enough to cover the FMA latency). Each
// input vector is loaded once and feeds every (output column, tap) that
// reads it; output column k reads input column k * SW + b * DW for tap
// column b. A planar_masked step (VN = 1) is for a vector that touches
// padding or the end of the column: lanes [0, n) are computed, and input
// outside [0, valid) of a column reads as zero. A planar_whole step takes
// zeros for the vectors that lie in padding, so the column's ends run as
// full steps too. Per accumulator the taps come in the order a, then b,
// whatever the step.
template <int KH, int KW, int J, int SW, int DW, int VN, bool RESIDENT, int LOAD, bool STREAM = false>
DW_TARGET inline void planar_iter(const double* const* col, double* const* out, const index_t* off,
                                  const reg* wres, const double* wtab, reg bv, index_t e, int act,
                                  index_t valid = 0, index_t n = WD) {
  static_assert(LOAD != planar_masked || VN == 1, "a masked step is one vector");
  constexpr int S = (J - 1) * SW + (KW - 1) * DW + 1;
  reg acc[VN][J];
  DW_UNROLL
  for (int h = 0; h < VN; ++h)
    DW_UNROLL
    for (int k = 0; k < J; ++k) acc[h][k] = bv;
  DW_UNROLL
  for (int a = 0; a < KH; ++a) {
    const index_t base = e + off[a];
    V::mask_t mask{};
    if constexpr (LOAD == planar_masked)
      mask = V::make_mask(clamp_index(-base, 0, n), clamp_index(valid - base, 0, n));
    bool inside[VN];
    DW_UNROLL
    for (int h = 0; h < VN; ++h) inside[h] = LOAD != planar_whole || (base + h * WD >= 0 && base + h * WD < valid);
    DW_UNROLL
    for (int s = 0; s < S; ++s) {
      reg x[VN];
      DW_UNROLL
      for (int h = 0; h < VN; ++h) {
        if constexpr (LOAD == planar_masked) x[h] = V::load_masked(col[s] + base, mask);
        else if constexpr (LOAD == planar_whole) x[h] = inside[h] ? V::load(col[s] + (base + h * WD)) : V::zero();
        else x[h] = V::load(col[s] + (base + h * WD));
        V::keep(x[h]);
      }
      planar_feed<KW, J, SW, DW, VN, RESIDENT>(acc, x, a, s, wres, wtab);
    }
  }
  DW_UNROLL
  for (int h = 0; h < VN; ++h)
    DW_UNROLL
    for (int k = 0; k < J; ++k) {
      if constexpr (LOAD == planar_masked) V::store_lanes(out[k] + e, finish(acc[h][k], act), n);
      else if constexpr (STREAM) V::stream(out[k] + e + h * WD, finish(acc[h][k], act));
      else V::store(out[k] + e + h * WD, finish(acc[h][k], act));
    }
}

// J output columns at once, down the whole output column.
// Weights: resident in registers when they fit next to the accumulators
// (32-register sets, small kernels); otherwise re-read every iteration
// from a table of broadcast vectors (one load per J * VN FMAs). The stores
// in the loop keep the compiler from hoisting those loads (the table could
// alias the output), which would only spill them.
template <int KH, int KW, int J, int SW, int DW>
DW_TARGET void planar_tile(const PlanarTile& t) {
  constexpr int VN = (V::registers >= 32 && J <= 4) ? 4 : 2;  // vectors per column per iteration
  constexpr bool resident = KH * KW + VN * J + VN <= V::registers;
  reg wres[KH * KW];
  double* wtab = t.wtab;
  planar_weights<KH, KW, resident>(t.w, wres, wtab);
  const reg bv = V::set1(t.bias);
  const double* col[(J - 1) * SW + (KW - 1) * DW + 1];
  DW_UNROLL
  for (int s = 0; s < (J - 1) * SW + (KW - 1) * DW + 1; ++s) col[s] = t.cols[s];
  double* out[J];
  DW_UNROLL
  for (int k = 0; k < J; ++k) out[k] = t.outs[k];
  index_t off[KH];
  DW_UNROLL
  for (int a = 0; a < KH; ++a) off[a] = t.off[a];
  const index_t L = t.L, fb = t.fb, fe = t.fe;
  const int act = t.act;

  // Doubles of each next column to prefetch per full step: whole lines,
  // spread over the steps.
  const index_t steps = std::max<index_t>(1, (fe - fb) / (VN * WD));
  const index_t pf_end = t.next_n > 0 ? t.next_len : 0;
  const index_t pf_step = ((pf_end + steps - 1) / steps + 7) & ~index_t(7);
  index_t pf = 0;
  index_t e = 0;
  while (e < L) {
    if (e >= fb && e + WD <= fe) {
      // Whole lines only, from the first line boundary on. (The plan
      // streams only the 3x3 tiles.)
      if constexpr (KH * KW <= 9) {
        if (t.stream) {
          for (; e % 8 != 0 && e + WD <= fe; e += WD)
            planar_iter<KH, KW, J, SW, DW, 1, resident, planar_full>(col, out, off, wres, wtab, bv, e, act);
          for (; e + VN * WD <= fe; e += VN * WD) {
            planar_iter<KH, KW, J, SW, DW, VN, resident, planar_full, true>(col, out, off, wres, wtab, bv, e, act);
            prefetch_next_slice(t, pf, pf_end, pf_step);
          }
        }
      }
      for (; e + VN * WD <= fe; e += VN * WD) {
        planar_iter<KH, KW, J, SW, DW, VN, resident, planar_full>(col, out, off, wres, wtab, bv, e, act);
        prefetch_next_slice(t, pf, pf_end, pf_step);
      }
      for (; e + WD <= fe; e += WD)
        planar_iter<KH, KW, J, SW, DW, 1, resident, planar_full>(col, out, off, wres, wtab, bv, e, act);
      continue;
    }
    // (4-vector tiles only, where a masked step has just J <= 4
    // accumulators, a latency chain; measured on the 5x5 tiles. The
    // 2-vector tiles keep the masked path, which keeps the library smaller.)
    if constexpr (VN == 4) {
      if (t.whole && e + VN * WD <= L) {
        planar_iter<KH, KW, J, SW, DW, VN, resident, planar_whole>(col, out, off, wres, wtab, bv, e, act, t.valid);
        e += VN * WD;
        continue;
      }
    }
    planar_iter<KH, KW, J, SW, DW, 1, resident, planar_masked>(col, out, off, wres, wtab, bv, e, act, t.valid,
                                                                std::min<index_t>(WD, L - e));
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
            acc = V::fmadd(V::set1(t.w[a + kh * b]), V::load(t.cols[b * dw] + o), acc);
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
        acc = V::fmadd(V::set1(t.w[a + kh * b]), V::load_masked(t.cols[b * dw] + base, mask), acc);
    }
    V::store_lanes(t.outs[0] + e, finish(acc, t.act), n);
    e += WD;
  }
}

// Tiles up to 4 columns wide everywhere; up to 8 with 32 registers.
template <int KH, int KW, int SW, int DW>
DW_TARGET void planar_dispatch_j(const PlanarTile& t, int J) {
  switch (J) {
    case 1: planar_tile<KH, KW, 1, SW, DW>(t); return;
    case 2: planar_tile<KH, KW, 2, SW, DW>(t); return;
    case 3: planar_tile<KH, KW, 3, SW, DW>(t); return;
    case 4: planar_tile<KH, KW, 4, SW, DW>(t); return;
    default: break;
  }
  if (V::registers >= 32) {
    switch (J) {
      case 5: planar_tile<KH, KW, 5, SW, DW>(t); return;
      case 6: planar_tile<KH, KW, 6, SW, DW>(t); return;
      case 7: planar_tile<KH, KW, 7, SW, DW>(t); return;
      default: planar_tile<KH, KW, 8, SW, DW>(t); return;
    }
  }
  planar_tile<KH, KW, 4, SW, DW>(t);  // not reached: jmax is 4 with 16 registers
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

// A small plane's tile (FastPlan::small_plane): J output columns of L <= VN
// vectors each, all VN vectors of a column in one step (J * VN
// accumulators), read in place. Input column s of the tile starts at byte
// address col[s] (a zero block for padding columns); kernel row a reads
// off[a] doubles past the output row. The first and the last vector of a
// column may reach above or below the input column: those loads are masked
// to the lanes inside it (first_mask[a], last_mask[a]), the others are
// whole (make_fast_plan() checks that they lie inside). Addresses are
// formed as integers, since a masked load's address may lie outside the
// input; its masked lanes are not read. Lanes past L are computed and not
// stored. Taps in the order a, then b, as in the other planar tiles.
template <int KH, int KW, int J, int DW, int VN>
DW_TARGET void small_plane_tile(const std::uintptr_t* col, const index_t* off, const V::mask_t* first_mask,
                                const V::mask_t* last_mask, const double* w, double* wtab, reg bv, double* out,
                                index_t L, int act) {
  constexpr int S = (J - 1) + (KW - 1) * DW + 1;
  constexpr bool resident = KH * KW + VN * J + VN <= V::registers;
  reg wres[KH * KW];
  planar_weights<KH, KW, resident>(w, wres, wtab);
  reg acc[VN][J];
  DW_UNROLL
  for (int h = 0; h < VN; ++h)
    DW_UNROLL
    for (int k = 0; k < J; ++k) acc[h][k] = bv;
  DW_UNROLL
  for (int a = 0; a < KH; ++a) {
    const std::uintptr_t row = sizeof(double) * static_cast<std::uintptr_t>(off[a]);
    const V::mask_t m0 = first_mask[a], m1 = last_mask[a];
    DW_UNROLL
    for (int s = 0; s < S; ++s) {
      reg x[VN];
      DW_UNROLL
      for (int h = 0; h < VN; ++h) {
        const double* p = reinterpret_cast<const double*>(col[s] + row + sizeof(double) * (h * WD));
        if (h == 0) x[h] = V::load_masked(p, m0);
        else if (h == VN - 1) x[h] = V::load_masked(p, m1);
        else x[h] = V::load(p);
        V::keep(x[h]);
      }
      planar_feed<KW, J, 1, DW, VN, resident>(acc, x, a, s, wres, wtab);
    }
  }
  DW_UNROLL
  for (int k = 0; k < J; ++k)
    DW_UNROLL
    for (int h = 0; h < VN; ++h) {
      const index_t n = h < VN - 1 ? WD : L - h * WD;
      if (n >= WD) V::store(out + k * L + h * WD, finish(acc[h][k], act));
      else V::store_lanes(out + k * L + h * WD, finish(acc[h][k], act), n);
    }
}

// Output columns per small-plane tile: the J * VN accumulators, VN input
// vectors and (if they fit) the weights in registers. Columns of five to
// eight vectors only with 32 registers (FastPlan::small_vn).
template <int VN>
constexpr int small_plane_cols() {
  if constexpr (VN > 4) return VN == 5 ? 3 : 2;
  return V::registers >= 32 ? (VN <= 2 ? 8 : 4) : (VN <= 2 ? 4 : 3);
}

template <int KH, int KW, int DW, int VN>
DW_TARGET void small_plane_j(const std::uintptr_t* col, const index_t* off, const V::mask_t* m0,
                             const V::mask_t* m1, const double* w, double* wtab, reg bv, double* out, index_t L,
                             int act, int J) {
  switch (J) {
    case 1: return small_plane_tile<KH, KW, 1, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
    case 2: return small_plane_tile<KH, KW, 2, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
    default: break;
  }
  if constexpr (small_plane_cols<VN>() == 2) {
    small_plane_tile<KH, KW, 2, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);  // not reached
  } else if (J == 3) {
    small_plane_tile<KH, KW, 3, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
  } else if constexpr (small_plane_cols<VN>() == 8) {
    switch (J) {
      case 4: return small_plane_tile<KH, KW, 4, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
      case 5: return small_plane_tile<KH, KW, 5, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
      case 6: return small_plane_tile<KH, KW, 6, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
      case 7: return small_plane_tile<KH, KW, 7, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
      default: return small_plane_tile<KH, KW, 8, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
    }
  } else if constexpr (small_plane_cols<VN>() == 4) {
    small_plane_tile<KH, KW, 4, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
  } else {
    small_plane_tile<KH, KW, 3, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, act);
  }
}

// Output plane `plane` (c * M + m) of a channels_last problem: where its
// input channel, output, weights (tap (a, b) at a + kh * b) and bias are.
struct PlaneRefs {
  const double* in;
  double* out;
  const double* w;
  double bias;
};

DW_TARGET inline PlaneRefs plane_refs(const FastPlan& P, index_t plane) {
  const Geometry& g = P.p.geometry;
  const index_t c = P.M == 1 ? plane : plane / P.M;
  const index_t m = P.M == 1 ? 0 : plane % P.M;
  return {P.p.input + c * g.in_stride.c, P.p.output + plane * g.out_stride.c,
          P.p.kernel + g.kernel_index(0, 0, c, m), P.p.bias ? P.p.bias[plane] : 0.0};
}

// Units [first, last), each (plane, band of output columns), of a
// small-plane problem (FastPlan::small_plane). A plane's work is a few
// hundred FMAs, so what all planes share is set up once per range.
template <int KH, int KW, int DW, int VN>
DW_TARGET void small_plane_columns(const FastPlan& P, index_t first, index_t last, double* scratch) {
  double* wtab = scratch;
  const index_t L = P.out_col;
  const index_t* off = P.off.data();
  V::mask_t m0[KH], m1[KH];
  DW_UNROLL
  for (int a = 0; a < KH; ++a) {
    m0[a] = V::make_mask(P.small_lanes[4 * a], P.small_lanes[4 * a + 1]);
    m1[a] = V::make_mask(P.small_lanes[4 * a + 2], P.small_lanes[4 * a + 3]);
  }
  // Padding columns read a zero block, placed so that every kernel row's
  // loads stay inside it.
  const std::uintptr_t zero_col = reinterpret_cast<std::uintptr_t>(P.zero_data() + P.small_zero_at);
  const std::uintptr_t in_col_bytes = sizeof(double) * static_cast<std::uintptr_t>(P.in_col);
  constexpr int jcap = small_plane_cols<VN>();
  std::uintptr_t col[(jcap - 1) + (KW - 1) * DW + 1];
  index_t plane = first / P.bands, band = first % P.bands;
  for (index_t u = first; u < last; ++u) {
    const PlaneRefs pr = plane_refs(P, plane);
    const double* in_plane = pr.in;
    double* out_plane = pr.out;
    const double* w = pr.w;
    const reg bv = V::set1(pr.bias);
    const index_t j0 = band * P.band_cols, j1 = std::min(P.OW, j0 + P.band_cols);
    for (index_t j = j0; j < j1;) {
      const int J = static_cast<int>(std::min<index_t>(jcap, j1 - j));
      const index_t S = (J - 1) + (KW - 1) * DW + 1;
      for (index_t s = 0; s < S; ++s) {
        const index_t x = j - P.pl + s;
        col[s] = static_cast<std::size_t>(x) >= static_cast<std::size_t>(P.W)
                     ? zero_col
                     : reinterpret_cast<std::uintptr_t>(in_plane) + static_cast<std::uintptr_t>(x) * in_col_bytes;
      }
      double* out = out_plane + j * L;
      if (P.out_prefetch) prefetch_lines<true>(out, J * L, J * L);
      small_plane_j<KH, KW, DW, VN>(col, off, m0, m1, w, wtab, bv, out, L, P.fused_act, J);
      if (P.span_act)
        for (int k = 0; k < J; ++k) activate_span(P.p.activation, out + k * L, L);
      j += J;
    }
    if (++band == P.bands) {
      band = 0;
      ++plane;
    }
  }
}

template <int KH, int KW, int DW>
DW_TARGET void small_plane_vn(const FastPlan& P, index_t first, index_t last, double* scratch) {
  switch (P.small_vn) {
    case 1: return small_plane_columns<KH, KW, DW, 1>(P, first, last, scratch);
    case 2: return small_plane_columns<KH, KW, DW, 2>(P, first, last, scratch);
    case 3: return small_plane_columns<KH, KW, DW, 3>(P, first, last, scratch);
    case 4: return small_plane_columns<KH, KW, DW, 4>(P, first, last, scratch);
    default: break;
  }
  if constexpr (V::registers >= 32) {
    switch (P.small_vn) {
      case 5: return small_plane_columns<KH, KW, DW, 5>(P, first, last, scratch);
      case 6: return small_plane_columns<KH, KW, DW, 6>(P, first, last, scratch);
      case 7: return small_plane_columns<KH, KW, DW, 7>(P, first, last, scratch);
      default: return small_plane_columns<KH, KW, DW, 8>(P, first, last, scratch);
    }
  }
}

DW_TARGET void run_small_plane_units(const FastPlan& P, index_t first, index_t last, double* scratch) {
  if (P.kh == 3) {
    if (P.dw == 1) small_plane_vn<3, 3, 1>(P, first, last, scratch);
    else small_plane_vn<3, 3, 2>(P, first, last, scratch);
  } else {
    if (P.dw == 1) small_plane_vn<5, 5, 1>(P, first, last, scratch);
    else small_plane_vn<5, 5, 2>(P, first, last, scratch);
  }
}

// Copy mode: input column -> column split into `sh` phases, so that
// padded row pr = r + pt sits at (pr % sh) * phase_len + N * (pr / sh).
// Phase p holds input rows at [phase_begin[p], phase_end[p]) only, and
// padding elsewhere, which zero_phase_padding() zeroes once per slot:
// packing never writes there (zeroing per column was four memset() calls
// per column of 112 rows).
DW_TARGET void pack_phase_column(const FastPlan& P, const double* src, double* dst) {
  const index_t N = P.N, sh = P.sh, pt = P.pt;
  if (N == 1 && sh == 2) {
    // Deinterleave: input row r goes to phase (r + pt) & 1 at index
    // (r + pt) >> 1. Rows from 2 * phase_end[0] - pt on are never read
    // ('valid' with an odd height and an even kernel leaves the last one),
    // and could land in the next phase.
    const index_t H = std::min(P.H, 2 * P.phase_end[0] - pt);
    double* ph[2] = {dst, dst + P.phase_len};
    index_t r = 0;
    if ((pt & 1) && r < H) {  // make r + pt even
      ph[1][pt >> 1] = src[0];
      r = 1;
    }
    for (; r + 2 * WD <= H; r += 2 * WD) {
      reg even, odd;
      V::deinterleave(src + r, even, odd);
      const index_t idx = (r + pt) >> 1;
      V::store(ph[0] + idx, even);
      V::store(ph[1] + idx, odd);
    }
    for (; r < H; ++r) ph[(r + pt) & 1][(r + pt) >> 1] = src[r];
    return;
  }
  for (index_t p = 0; p < sh; ++p) {
    // Row idx of phase p holds input row p + sh * idx - pt.
    const index_t i0 = P.phase_begin[p], count = P.phase_end[p] - i0;
    double* d = dst + p * P.phase_len + N * i0;
    const double* s = src + N * (p + sh * i0 - pt);
    if (N == 1) {
      for (index_t i = 0; i < count; ++i) d[i] = s[sh * i];
    } else {
      for (index_t i = 0; i < count; ++i) std::memcpy(d + N * i, s + N * sh * i, sizeof(double) * N);
    }
  }
}

DW_TARGET void zero_phase_padding(const FastPlan& P, double* dst) {
  const index_t N = P.N;
  for (index_t p = 0; p < P.sh; ++p) {
    double* d = dst + p * P.phase_len;
    std::fill(d, d + N * P.phase_begin[p], 0.0);
    std::fill(d + N * P.phase_end[p], d + P.phase_len, 0.0);
  }
}

// Output plane `plane` (c * M + m), output columns [j0, j1). For small
// planes this per-plane set-up is a large part of the work, so it reads the
// plane's weights in place and keeps the column bookkeeping to one compare.
// next_plane, next_j0: the unit this thread runs next (-1: none), whose
// first columns the last tile prefetches (FastPlan::in_prefetch).
DW_TARGET void run_planar_unit(const FastPlan& P, index_t plane, index_t j0, index_t j1, index_t next_plane,
                               index_t next_j0, double* scratch) {
  const PlaneRefs pr = plane_refs(P, plane);
  const double* in_plane = pr.in;
  double* out_plane = pr.out;
  const int kh = P.kh, kw = P.kw, sw = P.sw, dw = P.dw;

  // The ring of packed columns (copy mode), then the tile's column pointers.
  index_t* tags = reinterpret_cast<index_t*>(scratch);
  for (index_t r = 0; r < P.ring; ++r) tags[r] = -1;
  double* ring = reinterpret_cast<double*>((reinterpret_cast<std::uintptr_t>(tags + P.ring) + 63) & ~std::uintptr_t(63));
  for (index_t r = 0; r < P.ring; ++r) zero_phase_padding(P, ring + r * P.slot);
  const double** cols = reinterpret_cast<const double**>(ring + P.ring * P.slot);
  double* outs[8];

  const bool special = tiled_shape(kh, kw, sw, dw);
  PlanarTile t;
  t.cols = cols;
  t.outs = outs;
  t.off = P.off.data();
  t.w = pr.w;
  t.wtab = reinterpret_cast<double*>(cols + P.span_cols);
  t.bias = pr.bias;
  t.L = P.out_col;
  t.valid = P.valid_len;
  t.fb = P.fast_begin;
  t.fe = P.fast_end;
  t.whole = P.whole_vectors;
  t.stream = P.out_stream;
  t.act = P.fused_act;
  t.kh = kh;
  t.kw = kw;
  t.dw = dw;

  const double* next[16];
  t.next = next;
  t.next_len = P.in_col;

  const double* zeros = P.zero_data();
  const std::size_t W = static_cast<std::size_t>(P.W);
  for (index_t j = j0; j < j1;) {
    const int J = special ? static_cast<int>(std::min<index_t>(P.jmax, j1 - j)) : 1;
    const index_t S = (J - 1) * sw + (kw - 1) * dw + 1;
    const index_t x0 = j * sw - P.pl;
    // The next tile's input columns this one does not read; in the last
    // tile, the first tile's of the next unit.
    t.next_n = 0;
    if (P.in_prefetch && special) {
      const double* next_in = in_plane;
      index_t nj = j + J, nJ = std::min<index_t>(P.jmax, j1 - nj), nx0 = x0 + S;
      bool any = nj < j1;
      if (!any && next_plane >= 0) {  // the next unit's first tile, unless it reads this plane
        next_in = plane_refs(P, next_plane).in;
        any = next_in != in_plane;
        nj = next_j0;
        nJ = P.jmax;
        nx0 = nj * sw - P.pl;
      }
      const index_t nx1 = std::min<index_t>((nj + nJ - 1) * sw - P.pl + (kw - 1) * dw + 1, P.W);
      for (index_t x = std::max<index_t>(nx0, 0); any && x < nx1 && t.next_n < 16; ++x)
        next[t.next_n++] = next_in + x * P.in_col;
    }
    for (index_t s = 0; s < S; ++s) {
      const index_t x = x0 + s;
      if (static_cast<std::size_t>(x) >= W) {  // padding column (x < 0 or x >= W)
        cols[s] = zeros;
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
    if (P.out_prefetch) prefetch_lines<true>(outs[0], J * P.out_col, J * P.out_col);
    if (P.out_stream)  // the lines of the next tile's columns that take ordinary stores
      for (int k = J; k < 2 * J; ++k) {
        prefetch_lines<true>(outs[0], k * P.out_col, P.stream_head);
        prefetch_lines<true>(outs[0], k * P.out_col + P.stream_tail, P.out_col - P.stream_tail);
      }
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

// The plan's jmax for channels_first is 4 (make_fast_plan()); other tile
// heights are not instantiated (each costs code in every instruction set).
template <int KH, int KW, int SH, int DH>
DW_TARGET void cf_dispatch_j(const CfColumn& t, int jmax) {
  if (jmax == 4) cf_column<KH, KW, 4, SH, DH>(t);
  else cf_column_general(t);
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

// ---- direct channels_first: large pixel blocks, lane groups innermost ----

struct CfDirect {
  index_t groups;          // lane groups (the last may be partial)
  index_t tail;            // lanes in the last group
  const index_t* in_off;   // per group: input lane of its first lane
  const double* wpack;     // [group][kh * kw][WD]
  const double* bpack;     // [group][WD]
  index_t os;              // doubles between output pixels of a column (P_out)
  int act;
  bool affine;             // in_off[g] == g * WD (depth_multiplier 1)
  // Permuted groups (FastPlan::group_perm), or nullptr: group g loads
  // load_n[g] lanes from in_off[g] and permutes them with perm + g * 2 * WD.
  const std::int32_t* perm;
  const index_t* load_n;
  index_t unmasked;        // groups [0, unmasked) load whole vectors
  bool prefetch;           // FastPlan::cf_prefetch
  bool stream;             // FastPlan::cf_stream
  bool out_prefetch;       // FastPlan::out_prefetch
  bool burst_ok;           // the next tile's output may be prefetched in one burst
};

// Group g's input vector at p (p already offset by in_off[g]): masked to the
// lanes that exist, permuted to the group's output lanes when it has a
// permutation.
DW_TARGET inline reg cf_group_load(const CfDirect& d, const double* p, V::mask_t m, const V::perm_t& pg) {
  const reg x = V::load_masked(p, m);
  return d.perm ? V::permute(x, pg) : x;
}

DW_TARGET inline V::mask_t cf_group_mask(const CfDirect& d, index_t g, bool partial) {
  return V::make_mask(0, d.perm ? d.load_n[g] : (partial ? d.tail : WD));
}

DW_TARGET inline V::perm_t cf_group_perm(const CfDirect& d, index_t g) {
  V::perm_t pg{};
  if (d.perm) pg = V::load_perm(d.perm + g * 2 * WD);
  return pg;
}

// How a direct step's groups find their input lanes.
enum CfLoad : int {
  cf_affine = 0,    // group v at lane v * WD
  cf_offset = 1,    // group v at lane_off[v]
  cf_permuted = 2,  // group v at lane_off[v], then permuted by pv[v]
};

// One step of the direct tile: GN lane groups by J output rows, J * GN
// independent accumulators. Each input vector (row r, column b, group v) is
// loaded once and feeds every (output row k, kernel row a) with
// k * SH + a * DH == r. Group v reads from col[b] as LOAD says; its
// weights, bias and output start at v * WD lanes past w, bias and o.
// Each accumulator gets its taps in the order b, then a (the column loop
// outside: with the row loop outside, channels_first 1 x 56 x 56 x 144
// took 12 % longer, dilation 2 on 4 x 64 x 64 x 64 6 %).
template <int KH, int KW, int J, int SH, int DH, int GN, int LOAD, bool STREAM, bool CLIP>
DW_TARGET inline void cf_direct_step(const double* const* col, const index_t* roff, const index_t* lane_off,
                                     const V::perm_t* pv, const double* w, const double* bias, double* o,
                                     index_t os, int act, int rlo, int rhi) {
  constexpr int R = (J - 1) * SH + (KH - 1) * DH + 1;
  reg acc[GN][J];
  DW_UNROLL
  for (int v = 0; v < GN; ++v) {
    const reg bv = V::load(bias + v * WD);
    DW_UNROLL
    for (int k = 0; k < J; ++k) acc[v][k] = bv;
  }
  DW_UNROLL
  for (int b = 0; b < KW; ++b)
    DW_UNROLL
    for (int r = 0; r < R; ++r) {
      if (CLIP && (r < rlo || r >= rhi)) continue;  // a padding row
      DW_UNROLL
      for (int v = 0; v < GN; ++v) {
        reg x;
        if constexpr (LOAD == cf_permuted) x = V::permute(V::load(col[b] + (roff[r] + lane_off[v])), pv[v]);
        else if constexpr (LOAD == cf_offset) x = V::load(col[b] + (roff[r] + lane_off[v]));
        else x = V::load(col[b] + (roff[r] + v * WD));
        DW_UNROLL
        for (int k = 0; k < J; ++k) {
          const int as = r - k * SH;  // a * DH
          if (as < 0 || as % DH != 0 || as / DH >= KH) continue;
          const int a = as / DH;
          acc[v][k] = V::fmadd(V::load(w + (v * KH * KW + a * KW + b) * WD), x, acc[v][k]);
        }
      }
    }
  DW_UNROLL
  for (int v = 0; v < GN; ++v)
    DW_UNROLL
    for (int k = 0; k < J; ++k) {
      if constexpr (STREAM) V::stream(o + k * os + v * WD, finish(acc[v][k], act));
      else V::store(o + k * os + v * WD, finish(acc[v][k], act));
    }
}

// Prefetches, for writing, the lanes of GV groups from `o` on in the J
// output pixels after a tile's J (FastPlan::out_prefetch).
template <int J, int GV>
DW_TARGET inline void cf_prefetch_next_rows(const double* o, index_t os) {
  DW_UNROLL
  for (int k = J; k < 2 * J; ++k) prefetch_lines<true>(o, k * os, GV * WD);
}

// J output pixels down a column. The tile's input rows [rlo, rhi) hold
// data; with CLIP the others are padding rows, whose taps are skipped
// (without, rlo = 0 and rhi = R). col[b] is the input pixel of row rlo in
// column b (or a zero block as long as R rows), so row r of the tile is at
// col[b] + (r - rlo) * rs. GV lane groups per iteration: J * GV
// independent accumulators.
template <int KH, int KW, int J, int SH, int DH, bool CLIP>
DW_TARGET void cf_direct_tile(const CfDirect& d, const double* const* colbase, index_t rs, double* out, int rlo,
                              int rhi) {
  constexpr int R = (J - 1) * SH + (KH - 1) * DH + 1;
  constexpr int GV = (V::registers >= 32 ? 16 : 8) / J >= 2 ? (V::registers >= 32 ? 16 : 8) / J : 1;
  // Permuted groups (below): fewer per step, since each loaded vector also
  // takes a permute. Harness, avx512, 1 x 56 x 56 x 72, M = 2: 2 groups
  // per step (as with 16 registers) 270-300 us, 4 groups 300-316 us.
  constexpr int GVP = 8 / J >= 2 ? 8 / J : 1;
  index_t roff[R];
  DW_UNROLL
  for (int r = 0; r < R; ++r) roff[r] = (CLIP ? r - rlo : r) * rs;
  const double* col[KW];
  DW_UNROLL
  for (int b = 0; b < KW; ++b) col[b] = colbase[b];
  const index_t os = d.os;
  const int act = d.act;
  const index_t full = d.tail == WD ? d.groups : d.groups - 1;
  // The next tile's output (FastPlan::out_prefetch): in one burst here when
  // it is at most 6 KB, otherwise step by step in the loops below.
  // Harness, cold outputs, 1T, builds in turn: 1 x 56 x 56 x 144 357 ->
  // 272-284 us, 1 x 28 x 28 x 192 124 -> 111 (4.6 and 6 KB per tile);
  // 18 KB bursts (1 x 14 x 14 x 576) lost 4 %; tiles of every other row
  // (row dilation 2) lost 5 % with bursts of 4 and 8 KB (4 x 64 x 64 x 64).
  const bool burst = d.out_prefetch && d.burst_ok && J * d.groups * WD * static_cast<index_t>(sizeof(double)) <= 6144;
  // (Its own loop: the same through cf_prefetch_next_rows() with a
  // runtime lane count ran cf 1 x 56 x 56 x 144 at 337-348 us against 297-307.)
  if (burst)
    for (int k = J; k < 2 * J; ++k) prefetch_lines<true>(out, k * os, d.groups * WD);
  const bool step_prefetch = d.out_prefetch && !burst;
  index_t g = 0;
  if (d.affine) {
    // Group g reads lanes in_off[0] + g * WD on: advance the column pointers
    // and keep the row offsets in registers (address = pointer + offset).
    DW_UNROLL
    for (int b = 0; b < KW; ++b) col[b] += d.in_off[0];
    const double* w = d.wpack;
    const double* bias = d.bpack;
    double* o = out;
    for (; g + GV <= full; g += GV) {
      if (d.stream)
        cf_direct_step<KH, KW, J, SH, DH, GV, cf_affine, true, CLIP>(col, roff, nullptr, nullptr, w, bias, o, os, act,
                                                                     rlo, rhi);
      else
        cf_direct_step<KH, KW, J, SH, DH, GV, cf_affine, false, CLIP>(col, roff, nullptr, nullptr, w, bias, o, os, act,
                                                                      rlo, rhi);
      if (d.prefetch) {
        // The rows of the rightmost column that the next row tile adds
        // (the other columns were read by earlier units of this strip).
        // Past the last row these addresses lie outside the input: they
        // are formed as integers (no out-of-bounds pointer), and a
        // prefetch never faults.
        const std::uintptr_t next = reinterpret_cast<std::uintptr_t>(col[KW - 1]);
        DW_UNROLL
        for (int r = R; r < R + J * SH; ++r)
          DW_UNROLL
          for (int v = 0; v < GV; v += 64 / (WD * 8))
            __builtin_prefetch(reinterpret_cast<const void*>(next + sizeof(double) * (r * rs + v * WD)), 0, 3);
      }
      if (step_prefetch) cf_prefetch_next_rows<J, GV>(o, os);
      DW_UNROLL
      for (int b = 0; b < KW; ++b) col[b] += GV * WD;
      w += GV * KH * KW * WD;
      bias += GV * WD;
      o += GV * WD;
    }
    if (d.prefetch && ((reinterpret_cast<std::uintptr_t>(col[KW - 1]) & 63) != 0 || g < d.groups)) {
      // The rest of the next tile's rows: the groups the loop below takes,
      // and the line the last group ends in when the input is not aligned
      // to a cache line (then each row spans one line more than the steps
      // above fetched). Harness, 1 x 512 x 512 x 32, 1 thread: input 16
      // bytes off a line 26 -> 14 ms, 32 bytes off 14.9 -> 12.8 ms (aligned:
      // 6.9-7.5 ms either way).
      const std::uintptr_t next = reinterpret_cast<std::uintptr_t>(col[KW - 1]);
      const index_t rest_bytes = static_cast<index_t>(sizeof(double)) * (d.groups - g) * WD + 63;
      for (int r = R; r < R + J * SH; ++r)
        for (index_t off = 0; off < rest_bytes; off += 64)
          __builtin_prefetch(reinterpret_cast<const void*>(next + sizeof(double) * (r * rs) + off), 0, 3);
    }
    DW_UNROLL
    for (int b = 0; b < KW; ++b) col[b] = colbase[b];
  }
  if (d.perm) {
    // Each group loads from its own lane and permutes.
    const index_t whole = std::min(full, d.unmasked);
    for (; g + GVP <= whole; g += GVP) {
      V::perm_t pv[GVP];
      DW_UNROLL
      for (int v = 0; v < GVP; ++v) pv[v] = V::load_perm(d.perm + (g + v) * 2 * WD);
      cf_direct_step<KH, KW, J, SH, DH, GVP, cf_permuted, false, CLIP>(
          col, roff, d.in_off + g, pv, d.wpack + g * (KH * KW * WD), d.bpack + g * WD, out + g * WD, os, act, rlo, rhi);
    }
  } else if (!d.affine) {
    // Consecutive input lanes, but not at the group's own position
    // (depth_multiplier > 1, batch of a vector or more): GV groups per step
    // as in the affine loop, each from its own lane. Only in full tiles
    // (jmax = 4 rows): the shorter ones at the end of a band take the loop
    // below, which keeps the library's size down.
    if constexpr (J == 4) {
      for (; g + GV <= full; g += GV) {
        if (d.stream)
          cf_direct_step<KH, KW, J, SH, DH, GV, cf_offset, true, CLIP>(col, roff, d.in_off + g, nullptr,
                                                                       d.wpack + g * (KH * KW * WD), d.bpack + g * WD,
                                                                       out + g * WD, os, act, rlo, rhi);
        else
          cf_direct_step<KH, KW, J, SH, DH, GV, cf_offset, false, CLIP>(col, roff, d.in_off + g, nullptr,
                                                                        d.wpack + g * (KH * KW * WD), d.bpack + g * WD,
                                                                        out + g * WD, os, act, rlo, rhi);
        if (step_prefetch) cf_prefetch_next_rows<J, GV>(out + g * WD, os);
      }
    }
  }
  // One group at a time. Taps in the order b, then a, as in the steps:
  // which groups this loop takes depends on the tile height, and that on
  // the thread count (row bands), so another order here would make results
  // differ in the last bit between thread counts.
  for (; g < d.groups; ++g) {
    const double* wg = d.wpack + g * (KH * KW * WD);
    const index_t io = d.in_off[g];
    const bool partial = g >= full;
    const V::mask_t m = cf_group_mask(d, g, partial);
    const V::perm_t pg = cf_group_perm(d, g);
    reg acc[J];
    const reg bv = V::load(d.bpack + g * WD);
    DW_UNROLL
    for (int k = 0; k < J; ++k) acc[k] = bv;
    DW_UNROLL
    for (int b = 0; b < KW; ++b)
      DW_UNROLL
      for (int a = 0; a < KH; ++a) {
        const reg wv = V::load(wg + (a * KW + b) * WD);
        DW_UNROLL
        for (int k = 0; k < J; ++k) {
          const int r = k * SH + a * DH;
          if (CLIP && (r < rlo || r >= rhi)) continue;
          acc[k] = V::fmadd(wv, cf_group_load(d, col[b] + (roff[r] + io), m, pg), acc[k]);
        }
      }
    DW_UNROLL
    for (int k = 0; k < J; ++k) V::store_lanes(out + k * os + g * WD, finish(acc[k], act), partial ? d.tail : WD);
  }
}

// One output pixel with a pointer per tap (zero block where the tap is
// padding): border rows of the tiled kernels. GV groups per iteration.
template <int T>
DW_TARGET void cf_direct_pixel_t(const CfDirect& d, const double* const* tapp, double* out) {
  constexpr int GV = V::registers >= 32 ? 8 : 4;
  const double* tap[T];
  DW_UNROLL
  for (int t = 0; t < T; ++t) tap[t] = tapp[t];
  const index_t full = d.tail == WD ? d.groups : d.groups - 1;
  index_t g = 0;
  if (d.affine) {
    const index_t base = d.in_off[0];
    for (; g + GV <= full; g += GV) {
      reg acc[GV];
      DW_UNROLL
      for (int v = 0; v < GV; ++v) acc[v] = V::load(d.bpack + (g + v) * WD);
      const double* w = d.wpack + g * (T * WD);
      const index_t io = base + g * WD;
      DW_UNROLL
      for (int t = 0; t < T; ++t)
        DW_UNROLL
        for (int v = 0; v < GV; ++v)
          acc[v] = V::fmadd(V::load(w + (v * T + t) * WD), V::load(tap[t] + (io + v * WD)), acc[v]);
      DW_UNROLL
      for (int v = 0; v < GV; ++v) V::store(out + (g + v) * WD, finish(acc[v], d.act));
    }
  }
  for (; g < d.groups; ++g) {
    const double* w = d.wpack + g * (T * WD);
    const index_t io = d.in_off[g];
    const bool partial = g >= full;
    const V::mask_t m = cf_group_mask(d, g, partial);
    const V::perm_t pg = cf_group_perm(d, g);
    reg acc = V::load(d.bpack + g * WD);
    DW_UNROLL
    for (int t = 0; t < T; ++t) acc = V::fmadd(V::load(w + t * WD), cf_group_load(d, tap[t] + io, m, pg), acc);
    V::store_lanes(out + g * WD, finish(acc, d.act), partial ? d.tail : WD);
  }
}

// The same for any number of taps (kernels without a tile).
DW_TARGET void cf_direct_pixel(const CfDirect& d, int taps, const double* const* tap, double* out) {
  const index_t full = d.tail == WD ? d.groups : d.groups - 1;
  for (index_t g = 0; g < d.groups; ++g) {
    const double* w = d.wpack + g * (taps * WD);
    const index_t io = d.in_off[g];
    const bool partial = g >= full;
    const V::mask_t m = cf_group_mask(d, g, partial);
    const V::perm_t pg = cf_group_perm(d, g);
    reg acc = V::load(d.bpack + g * WD);
    for (int t = 0; t < taps; ++t) acc = V::fmadd(V::load(w + t * WD), cf_group_load(d, tap[t] + io, m, pg), acc);
    V::store_lanes(out + g * WD, finish(acc, d.act), partial ? d.tail : WD);
  }
}

template <int KH, int KW, int SH, int DH, bool CLIP>
DW_TARGET bool cf_direct_clip_j(const CfDirect& d, const double* const* col, index_t rs, double* out, int J, int rlo,
                                int rhi) {
  switch (J) {
    case 1: cf_direct_tile<KH, KW, 1, SH, DH, CLIP>(d, col, rs, out, rlo, rhi); return true;
    case 2: cf_direct_tile<KH, KW, 2, SH, DH, CLIP>(d, col, rs, out, rlo, rhi); return true;
    case 3: cf_direct_tile<KH, KW, 3, SH, DH, CLIP>(d, col, rs, out, rlo, rhi); return true;
    case 4: cf_direct_tile<KH, KW, 4, SH, DH, CLIP>(d, col, rs, out, rlo, rhi); return true;
    default: return false;  // J <= jmax = 4 for channels_first
  }
}

template <int KH, int KW, int SH, int DH>
DW_TARGET bool cf_direct_dispatch_j(const CfDirect& d, const double* const* col, index_t rs, double* out, int J,
                                    int rlo, int rhi) {
  const int R = (J - 1) * SH + (KH - 1) * DH + 1;
  if (rlo > 0 || rhi < R) return cf_direct_clip_j<KH, KW, SH, DH, true>(d, col, rs, out, J, rlo, rhi);
  return cf_direct_clip_j<KH, KW, SH, DH, false>(d, col, rs, out, J, 0, R);
}

// Rows of the tile are rs doubles apart in the input, and rows [rlo, rhi)
// of its R hold data (see cf_direct_tile()); false when the kernel shape,
// stride and dilation have no tile.
DW_TARGET bool cf_direct_dispatch(const CfDirect& d, int kh, int kw, int sh, int dh, const double* const* col,
                                  index_t rs, double* out, int J, int rlo, int rhi) {
  if (kh == 3 && kw == 3) {
    if (sh == 1 && dh == 1) return cf_direct_dispatch_j<3, 3, 1, 1>(d, col, rs, out, J, rlo, rhi);
    if (sh == 2 && dh == 1) return cf_direct_dispatch_j<3, 3, 2, 1>(d, col, rs, out, J, rlo, rhi);
    if (sh == 1 && dh == 2) return cf_direct_dispatch_j<3, 3, 1, 2>(d, col, rs, out, J, rlo, rhi);
  } else if (kh == 5 && kw == 5) {
    if (sh == 1 && dh == 1) return cf_direct_dispatch_j<5, 5, 1, 1>(d, col, rs, out, J, rlo, rhi);
    if (sh == 2 && dh == 1) return cf_direct_dispatch_j<5, 5, 2, 1>(d, col, rs, out, J, rlo, rhi);
    if (sh == 1 && dh == 2) return cf_direct_dispatch_j<5, 5, 1, 2>(d, col, rs, out, J, rlo, rhi);
  }
  return false;
}

// One unit: output column j, rows [i0, i1), lane groups [g0, g1).
DW_TARGET void run_cf_direct_unit(const FastPlan& P, index_t j, index_t i0, index_t i1, index_t g0,
                                  index_t g1, double* scratch) {
  CfDirect d;
  d.groups = g1 - g0;
  d.tail = std::min<index_t>(WD, P.P_out - (g1 - 1) * WD);
  d.in_off = P.group_in_off.data() + g0;
  d.wpack = P.wpack.get() + g0 * P.kh * P.kw * WD;
  d.bpack = P.bpack.get() + g0 * WD;
  d.os = P.P_out;
  d.act = P.fused_act;
  d.affine = P.M == 1;
  d.perm = P.group_perm.empty() ? nullptr : P.group_perm.data() + g0 * 2 * WD;
  d.load_n = P.group_load.empty() ? nullptr : P.group_load.data() + g0;
  d.unmasked = std::max<index_t>(0, std::min(P.unmasked_groups - g0, d.groups));
  d.prefetch = P.cf_prefetch;
  d.stream = P.cf_stream;
  d.out_prefetch = P.out_prefetch;
  d.burst_ok = true;
  const int kh = P.kh, kw = P.kw, taps = kh * kw;
  const double** tap = reinterpret_cast<const double**>(scratch);
  const double* zeros = P.zero_data();
  const double* col[8];
  // Output rows whose taps all fall inside the image.
  const index_t span = static_cast<index_t>(kh - 1) * P.dh;
  index_t lo = P.pt > 0 ? (P.pt + P.sh - 1) / P.sh : 0;
  index_t hi = P.H - span + P.pt > 0 ? (P.H - span + P.pt - 1) / P.sh + 1 : 0;
  lo = clamp_index(lo, i0, i1);
  hi = clamp_index(hi, lo, i1);
  double* out_col = P.p.output + P.P_out * P.OH * j + g0 * WD;
  // The unit's lanes of an output pixel: activations applied per span must
  // not reach the lanes of other units (other threads').
  const index_t unit_lanes = std::min(P.P_out, g1 * WD) - g0 * WD;
  // Row dilation 2 at row stride 1: output rows of one parity read input
  // rows of that parity only, so a tile of J rows i, i + 2, ... is the
  // undilated tile over every other row (J + kh - 1 input rows instead of
  // J + 2 * (kh - 1)). Same taps in the same order as the dilated tile.
  CfDirect every_other = d;
  every_other.os = 2 * P.P_out;
  every_other.burst_ok = false;
  const bool by_parity = P.dh == 2 && P.sh == 1 && tiled_kernel_shape(kh, kw);
  // The tile's column pointers at input row r0 (a zero block for padding).
  const auto column_starts = [&](index_t r0) {
    for (int b = 0; b < kw; ++b) {
      const index_t x = j * P.sw + b * P.dw - P.pl;
      col[b] = (x < 0 || x >= P.W) ? zeros : P.p.input + P.P_in * (r0 + P.H * x);
    }
  };
  for (index_t i = i0; i < i1;) {
    double* out = out_col + P.P_out * i;
    if (by_parity && i >= lo && i + 1 < hi) {
      const index_t J = std::min<index_t>(P.jmax, (hi - i) / 2);  // rows of each parity
      for (index_t parity = 0; parity < 2; ++parity) {
        column_starts(i + parity - P.pt);
        double* o = out + parity * P.P_out;
        cf_direct_dispatch(every_other, kh, kw, 1, 1, col, 2 * P.P_in, o, static_cast<int>(J), 0,
                           static_cast<int>(J + kh - 1));
        if (P.span_act)
          for (index_t k = 0; k < J; ++k) activate_span(P.p.activation, o + 2 * k * P.P_out, unit_lanes);
      }
      i += 2 * J;
      continue;
    }
    // Any other tile: up to jmax rows, border rows included. Their taps on
    // padding rows are skipped (one pixel at a time, the border rows were a
    // fifth of a channels_first 1 x 960 x 7 x 7 call, and the rows left
    // below the last full tile took a tile of one row).
    const index_t J = std::min<index_t>(P.jmax, i1 - i);
    bool done = false;
    if (kw <= 8) {  // col[] holds 8; cf_direct_dispatch() knows which shapes have a tile
      const index_t r0 = i * P.sh - P.pt;
      const index_t R = (J - 1) * P.sh + static_cast<index_t>(kh - 1) * P.dh + 1;
      const index_t rlo = clamp_index(-r0, 0, R), rhi = clamp_index(P.H - r0, rlo, R);
      if (rlo < rhi) {
        column_starts(r0 + rlo);
      } else {
        for (int b = 0; b < kw; ++b) col[b] = zeros;  // no row of the tile holds data
      }
      done = cf_direct_dispatch(d, kh, kw, P.sh, P.dh, col, P.P_in, out, static_cast<int>(J),
                                static_cast<int>(rlo), static_cast<int>(rhi));
    }
    if (!done) {
      for (int a = 0; a < kh; ++a)
        for (int b = 0; b < kw; ++b) {
          const index_t r = i * P.sh + a * P.dh - P.pt, x = j * P.sw + b * P.dw - P.pl;
          tap[a * kw + b] = (r < 0 || r >= P.H || x < 0 || x >= P.W) ? zeros : P.p.input + P.P_in * (r + P.H * x);
        }
      if (taps == 9) cf_direct_pixel_t<9>(d, tap, out);
      else if (taps == 25) cf_direct_pixel_t<25>(d, tap, out);
      else cf_direct_pixel(d, taps, tap, out);
      if (P.span_act) activate_span(P.p.activation, out, unit_lanes);
      i += 1;
      continue;
    }
    if (P.span_act)
      for (index_t k = 0; k < J; ++k) activate_span(P.p.activation, out + k * P.P_out, unit_lanes);
    i += J;
  }
}

// The input region of output tile (rows [i0, i0 + TR), cols [j0, j0 + TC))
// for lane group `grp` -> B[col][row][WD], zero where it is padding.
DW_TARGET void pack_cf_region(const FastPlan& P, index_t grp, index_t i0, index_t j0, index_t rr,
                              index_t rc, double* B) {
  const index_t o0 = grp * WD;
  const index_t lanes = std::min<index_t>(WD, P.P_out - o0);
  const bool contiguous = P.contiguous[grp] != 0;
  const index_t lane0 = P.in_lane[o0];
  const index_t r_first = i0 * P.sh - P.pt, c_first = j0 * P.sw - P.pl;
  // Region rows that fall inside the image.
  const index_t lo = clamp_index(-r_first, 0, rr), hi = clamp_index(P.H - r_first, lo, rr);
  for (index_t xc = 0; xc < rc; ++xc) {
    double* d = B + xc * rr * WD;
    const index_t x = c_first + xc;
    if (x < 0 || x >= P.W) {
      std::fill(d, d + rr * WD, 0.0);
      continue;
    }
    std::fill(d, d + lo * WD, 0.0);
    std::fill(d + hi * WD, d + rr * WD, 0.0);
    const double* src = P.p.input + P.P_in * (r_first + P.H * x);
    for (index_t r = lo; r < hi; ++r) {
      const double* px = src + P.P_in * r;
      if (contiguous && lanes == WD) {
        V::store(d + r * WD, V::load(px + lane0));
      } else if (contiguous) {
        V::store(d + r * WD, V::load_lanes(px + lane0, 0, lanes));
      } else {
        for (index_t l = 0; l < WD; ++l) d[r * WD + l] = l < lanes ? px[P.in_lane[o0 + l]] : 0.0;
      }
    }
  }
}

// One unit: an output tile, for a range of lane groups. Per group the
// tile's input region is packed (its cache lines are shared with the next
// group, so they are read from memory about once) and every output column
// of the tile computed from it.
DW_TARGET void run_cf_unit(const FastPlan& P, index_t tile, index_t g0, index_t g1, double* scratch) {
  const index_t tr = tile / P.tiles_c, tc = tile % P.tiles_c;
  const index_t i0 = tr * P.tile_rows, j0 = tc * P.tile_cols;
  const index_t rows = std::min(P.tile_rows, P.OH - i0), ncols = std::min(P.tile_cols, P.OW - j0);
  const index_t rr = (rows - 1) * P.sh + static_cast<index_t>(P.kh - 1) * P.dh + 1;
  const index_t rc = (ncols - 1) * P.sw + static_cast<index_t>(P.kw - 1) * P.dw + 1;
  double* B = scratch;
  const double* cols[16];
  const double** colp = P.kw <= 16 ? cols : reinterpret_cast<const double**>(scratch + P.slot);
  CfColumn t;
  t.cols = colp;
  t.step = P.P_out;
  t.rows = rows;
  t.act = P.fused_act;
  t.kh = P.kh;
  t.kw = P.kw;
  t.sh = P.sh;
  t.dh = P.dh;
  for (index_t grp = g0; grp < g1; ++grp) {
    const index_t o0 = grp * WD;
    pack_cf_region(P, grp, i0, j0, rr, rc, B);
    t.w = P.wpack.get() + grp * P.kh * P.kw * WD;
    t.bias = P.bpack.get() + grp * WD;
    t.lanes = std::min<index_t>(WD, P.P_out - o0);
    for (index_t jl = 0; jl < ncols; ++jl) {
      for (int b = 0; b < P.kw; ++b) colp[b] = B + (jl * P.sw + b * P.dw) * rr * WD;
      t.out = P.p.output + P.P_out * (i0 + P.OH * (j0 + jl)) + o0;
      cf_dispatch(t, P.jmax);
      if (P.span_act)
        for (index_t i = 0; i < rows; ++i) activate_span(P.p.activation, t.out + i * P.P_out, t.lanes);
    }
  }
}

// Units [first, last), one after the other.
DW_TARGET void run_unit_range(const FastPlan& P, index_t first, index_t last, double* scratch) {
  if (P.small_plane) {
    run_small_plane_units(P, first, last, scratch);
    return;
  }
  for (index_t u = first; u < last; ++u) {
    if (P.planar) {
      const index_t plane = u / P.bands, band = u % P.bands;
      const index_t j0 = band * P.band_cols;
      const index_t next_plane = u + 1 < last ? (u + 1) / P.bands : -1;
      run_planar_unit(P, plane, j0, std::min(P.OW, j0 + P.band_cols), next_plane,
                      ((u + 1) % P.bands) * P.band_cols, scratch);
    } else if (P.cf_direct) {
      // chunk-major, then column, then row band. With column dilation 2 and
      // stride 1, the even output columns first, then the odd ones: each
      // unit then shares two of its three input columns with the one before.
      const index_t chunk = u / (P.OW * P.bands), rest = u % (P.OW * P.bands);
      const index_t band = rest % P.bands;
      index_t j = rest / P.bands;
      if (P.dw == 2 && P.sw == 1) {
        const index_t evens = (P.OW + 1) / 2;
        j = j < evens ? 2 * j : 2 * (j - evens) + 1;
      }
      const index_t i0 = band * P.band_cols, g0 = chunk * P.chunk_groups;
      run_cf_direct_unit(P, j, i0, std::min(P.OH, i0 + P.band_cols), g0,
                         std::min(P.lanes_groups, g0 + P.chunk_groups), scratch);
    } else {
      const index_t tile = u / P.chunks, chunk = u % P.chunks;
      const index_t g0 = chunk * P.chunk_groups;
      run_cf_unit(P, tile, g0, std::min(P.lanes_groups, g0 + P.chunk_groups), scratch);
    }
  }
}

}  // namespace

DW_TARGET void run_units(const FastPlan& P, index_t first, index_t last, double* scratch) {
  run_unit_range(P, first, last, scratch);
  // Non-temporal stores are weakly ordered: make them visible before the
  // pool reports these units done.
  if (P.cf_stream || P.out_stream) V::fence();
}

// x * 0 is 0 for a finite x and NaN for Inf or NaN, and a NaN stays in the
// sums. (The plan checks the weights on every call; 64-bit integer tests of
// the exponent, in baseline code, took 1.35 us for the 8,640 weights of a
// 7 x 7 x 960 layer.)
DW_TARGET bool all_finite(const double* w, index_t n) {
  const reg z = V::zero();
  reg acc[4] = {z, z, z, z};
  index_t k = 0;
  for (; k + 4 * WD <= n; k += 4 * WD)
    DW_UNROLL
    for (int j = 0; j < 4; ++j) acc[j] = V::fmadd(V::load(w + k + j * WD), z, acc[j]);
  for (; k < n; k += WD) acc[0] = V::fmadd(V::load_lanes(w + k, 0, std::min<index_t>(WD, n - k)), z, acc[0]);
  double sums[4 * WD];
  DW_UNROLL
  for (int j = 0; j < 4; ++j) V::store(sums + j * WD, acc[j]);
  bool finite = true;
  for (double v : sums) finite = finite && v == 0.0;
  return finite;
}

}  // namespace DW_NS
}  // namespace depthwise
