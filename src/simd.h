// Small vector wrappers for the fast kernels. The package is compiled with
// R's default (baseline) flags, so wider instruction sets are reached only
// through functions carrying a target attribute and chosen at run time
// (see kernel_fast.cpp). Each wrapper is a struct of static functions over
// one register type; kernel_impl.h is written once against "V" and compiled
// once per wrapper.
//
//  VecBase  2 doubles, GCC/Clang vector extension: SSE2 on x86-64, NEON on
//           arm64, plain scalar code elsewhere. Multiply and add are
//           separate operations.
//  VecAvx2  4 doubles in a ymm register, AVX2 + FMA intrinsics.
//  VecAvx512 4 doubles in a ymm register with AVX-512VL: same width as AVX2,
//           but 32 registers and masked loads/stores. 512-bit vectors were
//           measured (bench/NOTES.md) and were not faster here.
#ifndef DEPTHWISE_SIMD_H
#define DEPTHWISE_SIMD_H

#include <cstdint>
#include <cstring>

#include "geometry.h"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define DEPTHWISE_X86_DISPATCH 1
#include <immintrin.h>
#define DW_AVX2_ATTR __attribute__((target("avx2,fma")))
#define DW_AVX512_ATTR __attribute__((target("avx2,fma,avx512f,avx512vl")))
#else
#define DEPTHWISE_X86_DISPATCH 0
#endif

namespace depthwise {
namespace simd {

// ---------------------------------------------------------------- baseline
struct VecBase {
  typedef double reg __attribute__((vector_size(16)));
  static constexpr int width = 2;
  static constexpr int registers = 16;

  static inline reg load(const double* p) {
    reg r;
    std::memcpy(&r, p, sizeof r);
    return r;
  }
  static inline void store(double* p, reg v) { std::memcpy(p, &v, sizeof v); }
  // A non-temporal store (p aligned to the vector) where the set has one;
  // fence() orders such stores before what follows.
  static inline void stream(double* p, reg v) { store(p, v); }
  static inline void fence() {}
  static inline reg set1(double v) {
    reg r = {v, v};
    return r;
  }
  static inline reg zero() { return set1(0.0); }
  // Keeps a loaded value in a register: see VecAvx2::keep().
  static inline void keep(reg&) {}
  // a * b + c (two roundings at baseline; a fused instruction where the
  // compiler contracts it, e.g. on arm64).
  static inline reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  // Lanes [lo, hi) from p, zero elsewhere; lanes outside are not read.
  static inline reg load_lanes(const double* p, index_t lo, index_t hi) {
    reg r = {0.0, 0.0};
    for (index_t l = lo; l < hi; ++l) r[l] = p[l];
    return r;
  }
  static inline void store_lanes(double* p, reg v, index_t n) {
    for (index_t l = 0; l < n; ++l) p[l] = v[l];
  }
  // A lane range [lo, hi) for repeated masked loads.
  struct mask_t {
    index_t lo, hi;
  };
  static inline mask_t make_mask(index_t lo, index_t hi) { return {lo, hi}; }
  static inline reg load_masked(const double* p, mask_t m) { return load_lanes(p, m.lo, m.hi); }
  // Even and odd elements of p[0 .. 2 * width).
  static inline void deinterleave(const double* p, reg& even, reg& odd) {
    even = reg{p[0], p[2]};
    odd = reg{p[1], p[3]};
  }
  // A lane permutation, given as 2 * width 32-bit indices (lane l takes
  // lane idx[2 l] / 2: the AVX2 form, two halves per double).
  struct perm_t {
    std::int32_t from[width];
  };
  static inline perm_t load_perm(const std::int32_t* idx) { return perm_t{{idx[0] >> 1, idx[2] >> 1}}; }
  static inline reg permute(reg v, perm_t p) { return reg{v[p.from[0]], v[p.from[1]]}; }
  // relu as the reference writes it: v < 0 ? 0 : v (NaN stays NaN).
  static inline reg relu(reg v) {
    for (int l = 0; l < width; ++l) v[l] = v[l] < 0 ? 0.0 : v[l];
    return v;
  }
  static inline reg relu6(reg v) {
    for (int l = 0; l < width; ++l) v[l] = v[l] < 0 ? 0.0 : (v[l] > 6.0 ? 6.0 : v[l]);
    return v;
  }
};

#if DEPTHWISE_X86_DISPATCH
// ---------------------------------------------------------------- AVX2+FMA
struct VecAvx2 {
  typedef __m256d reg;
  static constexpr int width = 4;
  static constexpr int registers = 16;

  DW_AVX2_ATTR static inline reg load(const double* p) { return _mm256_loadu_pd(p); }
  DW_AVX2_ATTR static inline void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  DW_AVX2_ATTR static inline void stream(double* p, reg v) { _mm256_stream_pd(p, v); }
  DW_AVX2_ATTR static inline void fence() { _mm_sfence(); }
  DW_AVX2_ATTR static inline reg set1(double v) { return _mm256_set1_pd(v); }
  DW_AVX2_ATTR static inline reg zero() { return _mm256_setzero_pd(); }
  // An input vector feeds several multiply-adds. Without this GCC may fold
  // its load into each of them (one load per FMA instead of one in all);
  // misaligned loads are the bottleneck then. Empty asm: no instruction.
  DW_AVX2_ATTR static inline void keep(reg& v) { __asm__("" : "+x"(v)); }
  DW_AVX2_ATTR static inline reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  DW_AVX2_ATTR static inline __m256i lane_mask(index_t lo, index_t hi) {
    const __m256i idx = _mm256_set_epi64x(3, 2, 1, 0);
    const __m256i ge_lo = _mm256_cmpgt_epi64(idx, _mm256_set1_epi64x(static_cast<long long>(lo) - 1));
    const __m256i lt_hi = _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(hi)), idx);
    return _mm256_and_si256(ge_lo, lt_hi);
  }
  DW_AVX2_ATTR static inline reg load_lanes(const double* p, index_t lo, index_t hi) {
    return _mm256_maskload_pd(p, lane_mask(lo, hi));
  }
  DW_AVX2_ATTR static inline void store_lanes(double* p, reg v, index_t n) {
    _mm256_maskstore_pd(p, lane_mask(0, n), v);
  }
  typedef __m256i mask_t;
  DW_AVX2_ATTR static inline mask_t make_mask(index_t lo, index_t hi) { return lane_mask(lo, hi); }
  DW_AVX2_ATTR static inline reg load_masked(const double* p, mask_t m) { return _mm256_maskload_pd(p, m); }
  DW_AVX2_ATTR static inline void deinterleave(const double* p, reg& even, reg& odd) {
    const reg lo = _mm256_loadu_pd(p), hi = _mm256_loadu_pd(p + 4);
    // unpack gives (p0 p4 p2 p6) / (p1 p5 p3 p7); the permute restores order.
    even = _mm256_permute4x64_pd(_mm256_unpacklo_pd(lo, hi), 0xD8);
    odd = _mm256_permute4x64_pd(_mm256_unpackhi_pd(lo, hi), 0xD8);
  }
  // Lane permutation: lane l takes lane idx[2 l] / 2 (vpermps on the
  // doubles' 32-bit halves, so idx holds 2 s, 2 s + 1 for source lane s).
  typedef __m256i perm_t;
  DW_AVX2_ATTR static inline perm_t load_perm(const std::int32_t* idx) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx));
  }
  DW_AVX2_ATTR static inline reg permute(reg v, perm_t p) {
    return _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), p));
  }
  // max/min return their second operand when one is NaN: NaN stays NaN and
  // -0 stays -0, as in the reference (v < 0 ? 0 : v).
  DW_AVX2_ATTR static inline reg relu(reg v) { return _mm256_max_pd(_mm256_setzero_pd(), v); }
  DW_AVX2_ATTR static inline reg relu6(reg v) {
    return _mm256_min_pd(_mm256_set1_pd(6.0), _mm256_max_pd(_mm256_setzero_pd(), v));
  }
};

// ---------------------------------------------------------------- AVX-512VL
// AVX2's operations (an AVX2 function inlines into an AVX-512 one, where it
// may use all 32 registers), plus mask registers for partial vectors and a
// one-instruction deinterleave.
struct VecAvx512 : VecAvx2 {
  static constexpr int registers = 32;

  DW_AVX512_ATTR static inline void keep(reg& v) { __asm__("" : "+v"(v)); }

  DW_AVX512_ATTR static inline __mmask8 lane_mask(index_t lo, index_t hi) {
    const unsigned below_hi = hi >= 4 ? 0xFu : ((1u << (hi < 0 ? 0 : hi)) - 1u);
    const unsigned below_lo = lo >= 4 ? 0xFu : ((1u << (lo < 0 ? 0 : lo)) - 1u);
    return static_cast<__mmask8>(below_hi & ~below_lo);
  }
  DW_AVX512_ATTR static inline reg load_lanes(const double* p, index_t lo, index_t hi) {
    return _mm256_maskz_loadu_pd(lane_mask(lo, hi), p);
  }
  DW_AVX512_ATTR static inline void store_lanes(double* p, reg v, index_t n) {
    _mm256_mask_storeu_pd(p, lane_mask(0, n), v);
  }
  typedef __mmask8 mask_t;
  DW_AVX512_ATTR static inline mask_t make_mask(index_t lo, index_t hi) { return lane_mask(lo, hi); }
  DW_AVX512_ATTR static inline reg load_masked(const double* p, mask_t m) { return _mm256_maskz_loadu_pd(m, p); }
  // One two-source permute per result instead of AVX2's unpack + permute.
  DW_AVX512_ATTR static inline void deinterleave(const double* p, reg& even, reg& odd) {
    const reg lo = _mm256_loadu_pd(p), hi = _mm256_loadu_pd(p + 4);
    even = _mm256_permutex2var_pd(lo, _mm256_set_epi64x(6, 4, 2, 0), hi);
    odd = _mm256_permutex2var_pd(lo, _mm256_set_epi64x(7, 5, 3, 1), hi);
  }
};
#endif

}  // namespace simd
}  // namespace depthwise

#endif
