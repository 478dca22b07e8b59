// Plans the fast forward pass and picks the instruction set at run time.
// The kernels themselves are in kernel_impl.h (compiled once per
// instruction set by kernel_isa_*.cpp); fast_plan.h describes the layout
// and the work units.
#include <algorithm>
#include <atomic>

#include "fast_plan.h"
#include "simd.h"

namespace depthwise {
namespace {

Isa probe_isa() {
#if DEPTHWISE_X86_DISPATCH
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  if (avx2) return Isa::avx2;
#endif
  return Isa::base;
}

std::atomic<int> active_level{-1};

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Multiply-adds per unit worth splitting for: below this a unit is not
// split into column bands.
constexpr double min_unit_work = 65536.0;

// channels_first pixel blocks narrower than this may be packed per output
// tile instead of read in place (see make_fast_plan()).
constexpr index_t cf_direct_min_lanes = 64;
// A lane chunk's input column strip (H x kw pixels): half of L2, or a
// quarter for inputs from memory. Harness, cold outputs, alternated runs,
// 256 KB against 512 KB: 8 x 28 x 28 x 240 5x5 1T 2,580-3,450 against
// 2,390-2,430 us, 2T 1,260-1,370 against 1,130-1,140; 4 x 64 x 64 x 64
// 1T 915-930 against 765-780, 2T 484-493 against 408-413; 32 x 56 x 56 x
// 144 (115 MB) 1T 17.0-21.6 against 18.8-21.8 ms, 2T 9.1-9.9 against
// 9.5-10.0. 1 MB was no better than 512 KB.
constexpr double cf_strip_bytes = 512.0 * 1024;
constexpr double cf_strip_bytes_memory = 256.0 * 1024;
// Inputs from this size on are taken to come from memory, not cache.
// Kernel harness, 32 x 56 x 56 x 144 channels_first (115 MB), 1 thread:
// 22.3 ms without prefetches, 17.0 with; 1 x 28 x 28 x 192 (in L2) 72 us
// without, 77 with.
constexpr double cf_prefetch_bytes = 32.0 * 1024 * 1024;
// From this size on (beyond L2) inputs at row stride 1 prefetch too.
// Harness, cold outputs, 1 thread, alternated runs: 8 x 28 x 28 x 240 5x5
// (12 MB) 3,660-4,120 -> 2,590-2,850 us; 4 x 64 x 64 x 64 (8 MB) 970-1,010
// -> 870-880 us, the same with dilation 2; level at 2 threads. At row
// stride 2 it lost: 1 x 112 x 112 x 96 (9.6 MB) 433-452 -> 490-511 us.
constexpr double cf_prefetch_bytes_stride1 = 4.0 * 1024 * 1024;

}  // namespace

Isa detected_isa() {
  static const Isa isa = probe_isa();
  return isa;
}

Isa active_isa() {
  const int level = active_level.load(std::memory_order_relaxed);
  return level < 0 ? detected_isa() : static_cast<Isa>(level);
}

Isa set_isa(Isa isa) {
  const Isa old = active_isa();
  const int want = std::min(static_cast<int>(isa), static_cast<int>(detected_isa()));
  active_level.store(std::max(0, want), std::memory_order_relaxed);
  return old;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

namespace {

// Whether no value is Inf or NaN, in the instruction set the kernels use.
bool all_finite(Isa isa, const double* w, index_t n) {
  switch (isa) {
#if DEPTHWISE_X86_DISPATCH
    case Isa::avx512: return isa_avx512::all_finite(w, n);
    case Isa::avx2: return isa_avx2::all_finite(w, n);
#endif
    default: return isa_base::all_finite(w, n);
  }
}

// Scratch (in doubles) beyond both 8 MiB and twice the data itself.
bool scratch_too_large(double doubles, const Geometry& g) {
  const double data = static_cast<double>(g.in_size()) + static_cast<double>(g.out_size());
  return doubles > std::max(double(1 << 20), 2.0 * data);
}

// Zeros for padding reads: the shared block when it is long enough (no
// fill per call; all its pages map the same zero page), else the plan's own.
constexpr index_t shared_zero_doubles = 8192;

void need_zeros(FastPlan& P, index_t n) {
  if (n <= shared_zero_doubles) P.zeros.clear();
  else P.zeros.assign(static_cast<std::size_t>(n), 0.0);
}

}  // namespace

const double* FastPlan::zero_data() const {
  alignas(64) static const double shared[shared_zero_doubles] = {};
  return zeros.empty() ? shared : zeros.data();
}

void make_fast_plan(const Problem& p, int threads, FastPlan& P) {
  const Geometry& g = p.geometry;
  P.p = p;
  P.isa = active_isa();
  P.width = P.isa == Isa::base ? simd::VecBase::width : 4;
  P.planar = !g.channels_first;
  P.kh = static_cast<int>(g.rows.kernel);
  P.kw = static_cast<int>(g.cols.kernel);
  P.sh = static_cast<int>(g.rows.stride);
  P.sw = static_cast<int>(g.cols.stride);
  P.dh = static_cast<int>(g.rows.dilation);
  P.dw = static_cast<int>(g.cols.dilation);
  P.N = g.batch;
  P.H = g.rows.in;
  P.W = g.cols.in;
  P.C = g.channels;
  P.M = g.multiplier;
  P.OH = g.rows.out;
  P.OW = g.cols.out;
  P.pt = g.rows.pad_before;
  P.pl = g.cols.pad_before;

  // Strides or dilated kernels reaching far beyond the input (legal, and
  // fuzzed: stride 2^31 - 1 gives a 1-pixel output) would size the tiles'
  // scratch and offsets by the stride instead of the data. They do little
  // work, so the reference kernel takes them.
  const auto far = [](const Axis& a) {
    return a.stride > a.in || a.dilation > a.in || a.effective_kernel() > 2 * a.in + 1;
  };
  if (far(g.rows) || far(g.cols)) {
    P.use_reference = true;
    return;
  }

  // Padding adds w * 0; that is 0 only for finite w.
  if (!all_finite(P.isa, p.kernel, g.kernel_size())) {
    P.use_reference = true;
    return;
  }
  switch (p.activation) {
    case Activation::linear:
    case Activation::softmax:
    case Activation::log_softmax:
      P.fused_act = 0;
      break;
    case Activation::relu: P.fused_act = 1; break;
    case Activation::relu6: P.fused_act = 2; break;
    default: P.span_act = true;
  }
  // Activations that read the whole output back after the kernels (per
  // span, or softmax over the last axis): no non-temporal stores then,
  // which would send the lines to memory just before they are read.
  const bool reads_output_back = P.span_act || p.activation == Activation::softmax ||
                                 p.activation == Activation::log_softmax;

  const index_t taps = static_cast<index_t>(P.kh) * P.kw;
  const int wd = P.width;
  // (FastPlan::out_prefetch)
  const bool cold_output = static_cast<double>(g.out_size()) * sizeof(double) >= cold_output_bytes;
  index_t outer = 0;
  double outer_work = 0;
  if (P.planar) {
    // Eight-column tiles only at row stride 1: in copy mode four columns
    // run 5 % faster at 1 thread and 10 % at 2 (1 x 112 x 112 x 96, s2,
    // harness, alternated runs: medians 218-223 against 242-259 us at 2T).
    P.jmax = (P.isa == Isa::avx512 && taps < 25 && P.sh == 1) ? 8 : 4;
    P.in_col = P.N * P.H;
    P.out_col = P.N * P.OH;
    P.copy_mode = P.sh > 1;
    P.off.assign(P.kh, 0);
    const index_t span_cols = static_cast<index_t>(P.jmax - 1) * P.sw + static_cast<index_t>(P.kw - 1) * P.dw + 1;
    if (P.copy_mode) {
      const index_t rows_needed = (P.OH - 1) * P.sh + static_cast<index_t>(P.kh - 1) * P.dh + 1;
      // Phases start on a cache line (the ring is aligned too), so that the
      // taps a = 0 and 1 of a stride-2 3x3 load whole lines: 1 x 112 x 112
      // x 96 s2, harness, 1T, min of 8 alternated runs 307 against 326 us
      // at avx512, 272 against 293 at avx2.
      const index_t rows = ceil_div(rows_needed, P.sh);  // per phase
      P.phase_len = ceil_div(P.N * rows, 8) * 8;
      P.pack_col = P.sh * P.phase_len;
      // Row idx of phase ph holds input row ph + sh * idx - pt if that is in [0, H).
      P.phase_begin.resize(P.sh);
      P.phase_end.resize(P.sh);
      for (index_t ph = 0; ph < P.sh; ++ph) {
        const index_t i0 = std::min(P.pt > ph ? ceil_div(P.pt - ph, P.sh) : 0, rows);
        const index_t i1 = P.H + P.pt - ph > 0 ? ceil_div(P.H + P.pt - ph, P.sh) : 0;
        P.phase_begin[ph] = i0;
        P.phase_end[ph] = std::max(std::min(i1, rows), i0);
      }
      for (int a = 0; a < P.kh; ++a)
        P.off[a] = (static_cast<index_t>(a) * P.dh % P.sh) * P.phase_len + P.N * (static_cast<index_t>(a) * P.dh / P.sh);
      P.valid_len = P.pack_col;
      P.fast_begin = 0;
      P.fast_end = P.out_col;
      P.ring = span_cols + 1;
      P.slot = P.pack_col;
    } else {
      for (int a = 0; a < P.kh; ++a) P.off[a] = P.N * (static_cast<index_t>(a) * P.dh - P.pt);
      P.valid_len = P.in_col;
      P.fast_begin = std::max<index_t>(0, -P.off.front());
      P.fast_end = std::min(P.out_col, P.in_col - P.off.back());
      P.whole_vectors = P.N % wd == 0;  // then off[a], in_col and out_col are multiples of wd
      P.ring = 0;
      P.slot = 0;
    }
    // A last bound on the scratch, whatever the shape.
    if (scratch_too_large(static_cast<double>(std::max(P.in_col, P.pack_col)) + span_cols +
                              static_cast<double>(P.ring) * static_cast<double>(P.slot),
                          g)) {
      P.use_reference = true;
      return;
    }
    need_zeros(P, std::max(P.in_col, P.pack_col) + wd);
    P.span_cols = span_cols;
    // ring tags, ring, column pointers, broadcast weight table
    P.scratch_doubles = P.ring + P.ring * P.slot + span_cols + taps * wd + 16;  // + ring alignment
    // Small planes (FastPlan::small_plane): output columns of at most four
    // vectors, eight with 32 registers. The general tile's column loop
    // (masked single vectors at both ends) and its output pointers cost
    // more than the work there.
    const index_t small_max_vn = P.isa == Isa::avx512 ? 8 : 4;
    if (tiled_kernel_shape(P.kh, P.kw) && P.dw <= 2 && !P.copy_mode && P.sw == 1 &&
        P.out_col <= small_max_vn * wd) {
      const int vn = static_cast<int>(ceil_div(P.out_col, wd));
      bool middle_inside = true;  // the unmasked vectors lie inside the input column
      for (int a = 0; a < P.kh; ++a)
        for (int h = 1; h < vn - 1; ++h)
          middle_inside = middle_inside && h * wd + P.off[a] >= 0 && (h + 1) * wd + P.off[a] <= P.in_col;
      if (middle_inside) {
        P.small_plane = true;
        P.small_vn = vn;
        P.small_zero_at = P.N * P.pt;
        P.small_lanes.resize(4 * static_cast<std::size_t>(P.kh));
        for (int a = 0; a < P.kh; ++a) {
          const index_t ends[2] = {P.off[a], static_cast<index_t>(vn - 1) * wd + P.off[a]};
          for (int v = 0; v < 2; ++v) {
            const index_t lo = std::min<index_t>(std::max<index_t>(-ends[v], 0), wd);
            P.small_lanes[4 * a + 2 * v] = lo;
            P.small_lanes[4 * a + 2 * v + 1] = std::min<index_t>(std::max(P.in_col - ends[v], lo), wd);
          }
        }
        need_zeros(P, P.small_zero_at + P.in_col + wd);
      }
    }
    // Four-column tiles over columns of 1 KB and more: the next tile's new
    // columns enter at 2 to 8 places at once and the hardware prefetchers
    // do not follow them (harness, 1 thread, cold outputs, alternated runs:
    // 8 x 28 x 28 x 240 5x5 'same' 2,300 -> 1,850 us at avx512, 3,300 ->
    // 2,330 at avx2; 4 x 56 x 56 x 144 3x3 at avx2 (four-column tiles too)
    // 1,430 -> 1,080). Not for eight-column tiles (the same 3x3 at avx512
    // 850 -> 1,000: 18 columns of 1.8 KB crowd L1 out) nor for short
    // columns (1 x 56 x 56 x 144: 195 -> 210; the hardware follows planes
    // of short columns, and the prefetches cost issue slots). Copy mode
    // reads its columns once, in order.
    P.in_prefetch = !P.copy_mode && P.jmax == 4 && P.in_col * 8 >= 1024;
    // Up to 8 KB of prefetches per tile: a burst of 16 KB (4 x 64 x 64 x 64)
    // held up the tile's own loads, 25 % slower.
    P.out_prefetch = cold_output && static_cast<double>(P.jmax) * P.out_col * sizeof(double) <= 8192;
    // Non-temporal stores (FastPlan::out_stream) where the output's read
    // for ownership is a large share of the traffic: the 3x3 tiles (the
    // general kernel does not stream), output columns of at least 12
    // whole lines. Harness, cold outputs, alternated runs, medians,
    // 1 / 2 threads, us:
    //   4 x 32 x 32 x 64 'valid', M 2 (mult2): 334-351 -> 189-229 / 184-187 -> 101-110
    //   4 x 64 x 64 x 64 dilation 2: 548-831 -> 514-748 / 470-520 -> 374-418
    //   1 x 512 x 512 x 32: 8,150-8,340 -> 6,490-7,500 / 3,810-4,290 -> 3,500-3,740
    //   32 x 56 x 56 x 144: 10,260-10,770 -> 8,110-9,520 / 7,590-8,170 -> 5,790-6,560
    //   1 x 96 x 96 x 64: 363-397 -> 345-390 / 200-209 -> 186-196
    // Not below that: 1 x 64 x 64 x 64 went 132-139 -> 176-188 (1 thread);
    // nor for 5x5: 8 x 28 x 28 x 240 went 2,050-2,330 -> 2,360-2,580.
    P.out_stream = cold_output && P.isa != Isa::base && !reads_output_back && taps <= 9 &&
                   tiled_shape(P.kh, P.kw, P.sw, P.dw) && P.out_col % 8 == 0 &&
                   P.out_col >= 96 && reinterpret_cast<std::uintptr_t>(p.output) % 64 == 0;
    if (P.out_stream) {
      // Full steps start at the first vector from fast_begin on, stream from
      // the first line boundary on, and stop within 16 doubles of fast_end.
      // Prefetching the lines outside for writing: 4 x 64 x 64 x 64
      // dilation 2, 1 thread, 575-1,110 -> 420-750 us.
      P.out_prefetch = false;
      P.stream_head = std::min(P.out_col, ceil_div(ceil_div(P.fast_begin, wd) * wd, 8) * 8);
      P.stream_tail = std::max(P.stream_head, (P.fast_end - 16) / 8 * 8);
    }
    outer = g.out_channels();
    outer_work = static_cast<double>(P.out_col) * P.OW * taps;
  } else {
    P.jmax = 4;  // direct tiles: output rows per tile (more rows run out of integer registers)
    P.P_in = P.N * P.C;
    P.P_out = P.N * P.C * P.M;
    P.lanes_groups = ceil_div(P.P_out, wd);
    // Packed weights beyond twice the data (large batches with large
    // kernels on tiny images): the reference kernel, as for scratch.
    if (scratch_too_large(static_cast<double>(P.lanes_groups) * static_cast<double>(taps) * wd, g)) {
      P.use_reference = true;
      return;
    }
    // Output lane o = n + N * (m + M * c) (batch, multiplier, channel).
    // Planning runs on every call, so one pass over the lanes counts
    // (n, m, c) up instead of dividing per lane, and writes each packed
    // value once: divisions and zero fills were a fifth of a 1 x 960 x 7 x 7
    // call.
    std::vector<index_t> tap_off(taps);  // tap a * kw + b in the Keras order
    for (int a = 0; a < P.kh; ++a)
      for (int b = 0; b < P.kw; ++b) tap_off[a * P.kw + b] = g.kernel_index(a, b, 0, 0);
    P.in_lane.resize(P.P_out);
    P.contiguous.assign(P.lanes_groups, 1);
    P.wpack.reset(new double[static_cast<std::size_t>(P.lanes_groups * taps * wd)]);
    P.bpack.reset(new double[static_cast<std::size_t>(P.lanes_groups * wd)]);
    index_t n = 0, m = 0, c = 0;
    for (index_t grp = 0; grp < P.lanes_groups; ++grp) {
      double* wblock = P.wpack.get() + grp * taps * wd;
      for (int l = 0; l < wd; ++l) {
        const index_t o = grp * wd + l;
        if (o >= P.P_out) {  // lanes past the last output lane
          for (index_t t = 0; t < taps; ++t) wblock[t * wd + l] = 0.0;
          P.bpack[o] = 0.0;
          continue;
        }
        P.in_lane[o] = n + P.N * c;
        if (P.in_lane[o] != P.in_lane[grp * wd] + l) P.contiguous[grp] = 0;
        const double* src = p.kernel + g.kernel_index(0, 0, c, m);
        for (index_t t = 0; t < taps; ++t) wblock[t * wd + l] = src[tap_off[t]];
        P.bpack[o] = p.bias ? p.bias[c * P.M + m] : 0.0;
        if (++n == P.N) {
          n = 0;
          if (++m == P.M) {
            m = 0;
            ++c;
          }
        }
      }
    }
    // Large pixel blocks whose lane groups all map to consecutive input
    // lanes: direct kernel (units are output columns, split in row bands).
    bool all_contiguous = true;
    for (char cg : P.contiguous) all_contiguous = all_contiguous && cg;
    // Otherwise (depth_multiplier > 1 with N < width) a group still runs
    // direct when its input lanes lie within one vector: it loads that
    // vector and permutes it. Kernel harness, 1 x 56 x 56 x 72, M = 2,
    // 1 thread: packed 488 us, direct with permutes 240-270 us; the same
    // work as M = 1 on 144 channels 217-243 us, channels_last 172-178 us.
    std::vector<index_t> base(P.lanes_groups);
    bool permutable = !all_contiguous;
    for (index_t grp = 0; grp < P.lanes_groups && permutable; ++grp) {
      const index_t o0 = grp * wd, lanes = std::min<index_t>(wd, P.P_out - o0);
      index_t lo = P.in_lane[o0], hi = lo;
      for (index_t l = 1; l < lanes; ++l) {
        lo = std::min(lo, P.in_lane[o0 + l]);
        hi = std::max(hi, P.in_lane[o0 + l]);
      }
      permutable = hi - lo < wd;
      // Start the vector early enough that it ends inside the pixel block:
      // whole-vector loads, no masks (unless the block is narrower).
      base[grp] = P.P_in >= wd ? std::min(lo, P.P_in - wd) : 0;
    }
    // Packing pays off only for narrow pixel blocks over large images at
    // row stride 1 (session 3: 4 x 10 x 10 x 12 packed 5.0 us, direct 2.7
    // us; stride 2 direct 2x faster), and not once the input is beyond the
    // cache and the direct kernel prefetches: harness, 1 thread, min of
    // alternated runs, 1 x 512 x 512 x 32 packed 14.2 ms, direct 7.5 ms;
    // 1 x 512 x 512 x 16 6.8 against 4.2-4.6 ms. Below 4 vector groups
    // packing still wins there (1 x 1024 x 1024 x 8: 15 against 26 ms),
    // and in L3 the two are level (1 x 128 x 128 x 32 and 48, 2 x 128 x
    // 128 x 24).
    const bool beyond_cache = 8.0 * static_cast<double>(g.in_size()) >= cf_prefetch_bytes;
    const bool pack = P.P_in < cf_direct_min_lanes && P.sh == 1 && P.OH * P.OW > 4096 &&
                      !(beyond_cache && P.lanes_groups >= 4);
    P.cf_direct = (all_contiguous || permutable) && !pack;
    if (P.cf_direct) {
      // Affine groups start at their first lane; permuted ones at `base`.
      P.group_in_off.resize(P.lanes_groups);
      for (index_t grp = 0; grp < P.lanes_groups; ++grp)
        P.group_in_off[grp] = all_contiguous ? P.in_lane[grp * wd] : base[grp];
      P.unmasked_groups = P.lanes_groups;
      P.cf_prefetch = beyond_cache ||
                      (P.sh == 1 && 8.0 * static_cast<double>(g.in_size()) >= cf_prefetch_bytes_stride1);
      if (!all_contiguous) {
        P.group_perm.assign(P.lanes_groups * 2 * wd, 0);
        P.group_load.resize(P.lanes_groups);
        for (index_t grp = 0; grp < P.lanes_groups; ++grp) {
          const index_t o0 = grp * wd, lanes = std::min<index_t>(wd, P.P_out - o0);
          P.group_load[grp] = std::min<index_t>(wd, P.P_in - base[grp]);
          for (index_t l = 0; l < lanes; ++l) {
            const auto from = static_cast<std::int32_t>(P.in_lane[o0 + l] - base[grp]);
            P.group_perm[grp * 2 * wd + 2 * l] = 2 * from;
            P.group_perm[grp * 2 * wd + 2 * l + 1] = 2 * from + 1;
          }
        }
        if (P.P_in < wd) P.unmasked_groups = 0;
      }
      // (Row dilation 2 runs tiles over every other row: see run_cf_direct_unit().)
      const index_t rows_span = P.dh == 2 && P.sh == 1 ? 2 * static_cast<index_t>(P.jmax + P.kh - 2) + 1
                                                      : static_cast<index_t>(P.jmax - 1) * P.sh +
                                                            static_cast<index_t>(P.kh - 1) * P.dh + 1;
      if (scratch_too_large(static_cast<double>(rows_span) * static_cast<double>(P.P_in), g)) {
        P.use_reference = true;
        return;
      }
      need_zeros(P, rows_span * P.P_in + wd);
      P.scratch_doubles = taps + 8;
      // Lane chunks: a chunk's input column strip (H x kw pixels) should
      // stay in L2 while its columns are computed.
      const double strip_bytes = 8.0 * P.H * P.kw * wd;  // per lane group
      const double strip_target = beyond_cache ? cf_strip_bytes_memory : cf_strip_bytes;
      P.chunk_groups = std::max<index_t>(1, static_cast<index_t>(strip_target / strip_bytes));
      P.chunk_groups = std::min(P.chunk_groups, P.lanes_groups);
      P.chunks = ceil_div(P.lanes_groups, P.chunk_groups);
      P.chunk_groups = ceil_div(P.lanes_groups, P.chunks);
      // Non-temporal output stores into cold outputs and beyond the cache
      // (see FastPlan::cf_stream). Harness, cold outputs, 1 thread,
      // alternated runs: 32 x 56 x 56 x 144 17.3-18.1 -> 13.0-13.8 ms
      // (2 threads 13.9-17.2 -> 12.3-13.6); 1 x 512 x 512 x 32 9.2-10.0 ->
      // 7.0-7.9 ms. Session 13, medians, 1 / 2 threads, us:
      //   1 x 56 x 56 x 144: 302-318 -> 238-247 / 172-297 -> 123-235
      //   1 x 28 x 28 x 192: 108-136 -> 81-86 / 71-83 -> 50-57
      //   1 x 14 x 14 x 576: 85-88 -> 65-66 / 51-56 -> 37-42
      //   1 x 7 x 7 x 960: 33-42 -> 28-34 / 22-24 -> 18-19
      //   1 x 112 x 112 x 96, strides 2: 274-326 -> 241-282 / 157-201 -> 133-191
      //   8 x 28 x 28 x 240, 5x5: 2,450-3,060 -> 2,230-2,250 / 1,310-1,380 ->
      //     1,230-1,320 (and one 2,250)
      //   4 x 64 x 64 x 64, dilation 2: 1,190-1,310 -> 990-1,020 / 510-810 -> 430-700
      // Session 14, depth_multiplier 2, offset steps (J = 4 tiles only):
      //   4 x 32 x 32 x 64, 1 / 2 threads: 332-350 -> 263-278 / 184-228 -> 135-157
      // The permuted steps do not stream: on 1 x 56 x 56 x 72 (M 2) the
      // ranges overlapped (341-422 -> 300-401 / 210-251 -> 190-228), and
      // their instantiations added ~9 MB to the library.
      // A step's groups (an even number but for 3-row affine tiles at
      // avx512, whose steps are 5 groups, 2.5 lines) then start on a cache
      // line if the output, the pixel block and each chunk do. (Cold
      // outputs whose activation reads them back keep ordinary stores.)
      // Shapes without streamed steps (no tile; permuted groups) keep the
      // output prefetch instead.
      const bool has_steps = tiled_shape(P.kh, P.kw, P.sh, P.dh) && P.group_perm.empty();
      const bool whole_lines = wd == 4 && has_steps && P.P_out % 8 == 0 &&
                               reinterpret_cast<std::uintptr_t>(p.output) % 64 == 0;
      if ((beyond_cache || (cold_output && !reads_output_back)) && whole_lines) {
        // lanes_groups = P_out / 4 is even, so an odd chunk is below it.
        if (P.chunk_groups % 2 != 0) {
          P.chunk_groups += 1;
          P.chunks = ceil_div(P.lanes_groups, P.chunk_groups);
        }
        P.cf_stream = true;
      }
      // (Harness, cold outputs, 1T: 1 x 56 x 56 x 144 340 -> 247 us, 1 x 28 x 28 x
      // 192 123-172 -> 101-132. Only the multi-group loops prefetch: in the
      // one-group loop, mult2 went 370 -> 390.)
      P.out_prefetch = cold_output && !P.cf_stream;
      const double column_work = static_cast<double>(P.chunk_groups) * wd * P.OH * taps;
      const index_t want = 4 * static_cast<index_t>(std::max(1, threads));
      P.bands = 1;
      if (P.OW * P.chunks < want && column_work > 2 * min_unit_work)
        P.bands = std::max<index_t>(1, std::min({ceil_div(want, P.OW * P.chunks),
                                                 static_cast<index_t>(column_work / min_unit_work),
                                                 ceil_div(P.OH, P.jmax)}));
      P.band_cols = ceil_div(ceil_div(P.OH, P.bands), P.jmax) * P.jmax;  // rows per band
      P.bands = ceil_div(P.OH, P.band_cols);
      P.units = P.chunks * P.OW * P.bands;
      P.unit_work = column_work / P.bands;
      return;
    }
    // Output tiles of up to 16 x 16 pixels: the input region of a tile
    // (one 64-byte line per pixel for two consecutive lane groups) then
    // fits in L1/L2.
    P.tile_rows = std::min<index_t>(P.OH, 16);
    P.tile_cols = std::min<index_t>(P.OW, 16);
    P.tiles_c = ceil_div(P.OW, P.tile_cols);
    P.tiles = ceil_div(P.OH, P.tile_rows) * P.tiles_c;
    const index_t rr = (P.tile_rows - 1) * P.sh + static_cast<index_t>(P.kh - 1) * P.dh + 1;
    const index_t rc = (P.tile_cols - 1) * P.sw + static_cast<index_t>(P.kw - 1) * P.dw + 1;
    P.slot = rr * rc * wd;
    P.scratch_doubles = P.slot + P.kw + 8;
    // Lane groups per unit: enough units to share among the threads, each
    // worth at least min_unit_work.
    const double tile_group_work = static_cast<double>(wd) * P.tile_rows * P.tile_cols * taps;
    const index_t want = 4 * static_cast<index_t>(std::max(1, threads));
    index_t chunks = 1;
    if (P.tiles < want) chunks = ceil_div(want, P.tiles);
    chunks = std::min<index_t>(chunks, std::max<index_t>(1, static_cast<index_t>(
        tile_group_work * P.lanes_groups / min_unit_work)));
    chunks = std::max<index_t>(1, std::min(chunks, P.lanes_groups));
    P.chunk_groups = ceil_div(P.lanes_groups, chunks);
    P.chunks = ceil_div(P.lanes_groups, P.chunk_groups);
    P.units = P.tiles * P.chunks;
    P.unit_work = tile_group_work * P.chunk_groups;
    return;
  }

  // Column bands: only when there are too few planes / lane groups to keep
  // every thread busy and a unit is big enough to be worth splitting.
  P.bands = 1;
  const index_t want_units = 4 * static_cast<index_t>(std::max(1, threads));
  if (outer < want_units && outer_work > 2 * min_unit_work) {
    const index_t by_threads = ceil_div(want_units, std::max<index_t>(outer, 1));
    const index_t by_work = static_cast<index_t>(outer_work / min_unit_work);
    P.bands = std::max<index_t>(1, std::min({by_threads, by_work, ceil_div(P.OW, P.jmax)}));
  }
  P.band_cols = ceil_div(P.OW, P.bands);
  P.band_cols = ceil_div(P.band_cols, P.jmax) * P.jmax;
  P.bands = ceil_div(P.OW, P.band_cols);
  P.units = outer * P.bands;
  P.unit_work = outer_work / P.bands;
}

void run_fast_units(const FastPlan& plan, index_t first, index_t last, double* scratch) {
  switch (plan.isa) {
#if DEPTHWISE_X86_DISPATCH
    case Isa::avx512: isa_avx512::run_units(plan, first, last, scratch); return;
    case Isa::avx2: isa_avx2::run_units(plan, first, last, scratch); return;
#endif
    default: isa_base::run_units(plan, first, last, scratch); return;
  }
}

}  // namespace depthwise
