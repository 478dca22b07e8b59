// The fast forward pass: a plan made once per call (layout, tiling, packed
// weights), then independent work units run by any number of threads.
//
// Data as R stores it (column-major):
//  - channels_last x[n, h, w, c]: every channel is a contiguous plane of
//    W columns, each column N*H long with the batch index fastest. The
//    kernel vectorises down a column (over e = n + N*h) and register-blocks
//    several output columns so that each input vector loaded serves up to
//    kw of them. Row stride 1 reads the input in place; row stride > 1
//    first copies the needed input columns, zero padded and split into
//    stride phases, so the strided rows become contiguous.
//  - channels_first x[n, c, h, w]: every pixel is a contiguous block of
//    N*C values. The kernel vectorises across that block (lanes = output
//    channels with the batch folded in) and register-blocks several output
//    rows. Per output tile and group of lanes the input region is first
//    packed, zero padded, into a small buffer that stays in L1; the lane
//    groups of a tile run one after the other, so the tile's input lines
//    are fetched from memory about once.
// A unit is (output plane, band of output columns) for channels_last and
// (output tile, range of lane groups) for channels_first. Every output
// element is computed by one unit, in an order that does not depend on the
// tiling or the thread that runs it, so results are identical at any thread
// count.
#ifndef DEPTHWISE_FAST_PLAN_H
#define DEPTHWISE_FAST_PLAN_H

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels.h"

namespace depthwise {

enum class Isa : int { base = 0, avx2 = 1, avx512 = 2 };

// Kernel shapes with compile-time tiles (others run the general kernels).
constexpr bool tiled_kernel_shape(int kh, int kw) { return (kh == 3 && kw == 3) || (kh == 5 && kw == 5); }
// Those whose stride and dilation along the axis a tile steps over also
// have compile-time tiles: the columns of the channels_last planar tiles
// (others run the general planar kernel), the rows of the channels_first
// direct tiles (cf_direct_dispatch(); others run one pixel at a time).
constexpr bool tiled_shape(int kh, int kw, int stride, int dilation) {
  return tiled_kernel_shape(kh, kw) &&
         ((stride == 1 && (dilation == 1 || dilation == 2)) || (stride == 2 && dilation == 1));
}

// Best instruction set this CPU supports (and this build can use).
Isa detected_isa();
// The one the kernels use: detected_isa() unless lowered by set_isa().
Isa active_isa();
// Lowers (or restores) the instruction set; requests above detected_isa()
// are clamped. Returns the previous active one. For tests and benchmarks.
Isa set_isa(Isa isa);
const char* isa_name(Isa isa);

struct FastPlan {
  Problem p;
  Isa isa = Isa::base;
  bool planar = true;          // channels_last (planes) or channels_first (pixel blocks)
  bool use_reference = false;  // non-finite weights: padding must not meet 0 * Inf
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  index_t N = 0, H = 0, W = 0, C = 0, M = 1, OH = 0, OW = 0, pt = 0, pl = 0;
  int fused_act = 0;           // 0 none, 1 relu, 2 relu6 applied in registers
  bool span_act = false;       // other element-wise activation, applied per span

  // channels_last
  bool copy_mode = false;  // row stride > 1
  index_t in_col = 0;      // N*H
  index_t out_col = 0;     // N*OH
  index_t phase_len = 0;   // copy mode: N * rows per phase, rounded up to whole cache lines
  index_t pack_col = 0;    // copy mode: sh * phase_len
  // copy mode: per phase, the rows [begin, end) that hold input rows
  std::vector<index_t> phase_begin, phase_end;
  std::vector<index_t> off;  // kh row offsets into an (input or packed) column
  // Small planes (output columns of at most four vectors, eight with
  // 32 registers; row stride 1):
  // tiles compute all small_vn vectors of an output column at once, from
  // the input in place; the first and the last vector of a column load
  // masked (small_lanes: per kernel row a, lanes [lo, hi) of the first
  // vector, then of the last), the others whole. Padding columns read
  // zero_data() from small_zero_at on.
  bool small_plane = false;
  int small_vn = 0;
  index_t small_zero_at = 0;
  std::vector<index_t> small_lanes;
  index_t valid_len = 0;   // column index range that holds data
  index_t fast_begin = 0, fast_end = 0;
  // Every vector at a multiple of the width in a column lies wholly inside
  // the input column or wholly in padding (row stride 1 and a batch that
  // is a multiple of the width): the column's ends then run as full steps
  // that take zeros for the padding vectors, not as masked single vectors.
  bool whole_vectors = false;
  // Tiles prefetch the input columns the next tile starts reading (see
  // make_fast_plan() for where that pays).
  bool in_prefetch = false;
  // Cold outputs: the full steps of the tiles store whole, aligned cache
  // lines with non-temporal stores (no read of the lines before they are
  // written); the other steps store as usual. Every output column starts
  // on a line (an aligned output, columns a multiple of 8 doubles). The
  // other steps' lines lie in [0, stream_head) and [stream_tail, out_col)
  // of a column, give or take a whole step at the ends; a tile prefetches
  // those of the next tile for writing.
  bool out_stream = false;
  index_t stream_head = 0, stream_tail = 0;

  // channels_first
  index_t P_in = 0, P_out = 0, lanes_groups = 0;
  index_t tile_rows = 0, tile_cols = 0, tiles_c = 0, tiles = 0;  // output tiles
  index_t chunk_groups = 0, chunks = 0;                           // lane groups per unit
  std::unique_ptr<double[]> wpack;   // [group][kh*kw][width]
  std::unique_ptr<double[]> bpack;   // [group][width]
  std::vector<index_t> in_lane;   // output lane -> input lane within a pixel block
  std::vector<char> contiguous;   // per group: lanes map to consecutive input lanes
  bool cf_direct = false;         // large pixel blocks: no packing, lane groups innermost
  std::vector<index_t> group_in_off;  // direct: input lane the group's vector loads start at
  // Direct, when a group's lanes are not consecutive input lanes
  // (depth_multiplier > 1 with a batch smaller than the vector): each group
  // loads group_load[g] lanes from group_in_off[g] and permutes them
  // (2 * width 32-bit indices per group, see simd.h). Empty otherwise.
  std::vector<std::int32_t> group_perm;
  std::vector<index_t> group_load;
  index_t unmasked_groups = 0;  // groups [0, this) load whole vectors
  // Direct, affine: prefetch the input rows the next row tile adds. Only
  // for inputs beyond the last-level cache, where the short runs of a lane
  // chunk leave the hardware prefetchers behind.
  bool cf_prefetch = false;
  // Direct, a cold output (or an input beyond the last-level cache): the
  // affine and offset multi-group steps of the row tiles store with
  // non-temporal stores (no read of the cold output lines before they are
  // written); permuted steps, the one-group loop and the pixel kernels keep
  // ordinary stores. Only for shapes with such steps, and when every such
  // store is vector-aligned and a step's groups fill whole cache lines (but
  // for 3-row affine tiles at avx512: 2.5 lines a step).
  bool cf_stream = false;

  // both
  // Output blocks are cold (kernels.h, cold_output_bytes): a tile
  // prefetches, for writing, the output the next tile writes (planar: the
  // next columns, if a tile writes at most 8 KB; channels_first direct, not
  // streaming, in its multi-group loops: the same lanes of the next rows),
  // so that reading those lines for ownership overlaps this tile's work
  // instead of stalling its stores.
  bool out_prefetch = false;
  int width = 2;           // lanes per vector of the chosen instruction set
  int jmax = 4;            // register-blocked tile size
  index_t span_cols = 0;   // input columns a planar tile reads (widest tile)
  index_t ring = 0;        // packed columns kept per thread
  index_t slot = 0;        // doubles per packed column
  index_t band_cols = 0, bands = 0, units = 0;
  double unit_work = 0;    // multiply-adds per unit (for chunking)
  index_t scratch_doubles = 0;
  // Zeros that padding reads point into (make_fast_plan() makes sure there
  // are enough): a shared block, or `zeros` when that is too short.
  std::vector<double> zeros;
  const double* zero_data() const;
};

// Fills `plan` for problem `p`; `threads` only steers the unit size.
void make_fast_plan(const Problem& p, int threads, FastPlan& plan);

// Runs units [first, last) with `scratch` (plan.scratch_doubles doubles,
// private to the calling thread). No R API calls: safe inside OpenMP.
void run_fast_units(const FastPlan& plan, index_t first, index_t last, double* scratch);

namespace isa_base {
void run_units(const FastPlan& plan, index_t first, index_t last, double* scratch);
bool all_finite(const double* w, index_t n);
}
namespace isa_avx2 {
void run_units(const FastPlan& plan, index_t first, index_t last, double* scratch);
bool all_finite(const double* w, index_t n);
}
namespace isa_avx512 {
void run_units(const FastPlan& plan, index_t first, index_t last, double* scratch);
bool all_finite(const double* w, index_t n);
}

}  // namespace depthwise

#endif
