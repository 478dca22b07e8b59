// Times the fast kernels alone: no R, no output allocator, no interpreter.
// For comparing kernel changes on a noisy machine (run two builds in turn).
// Build and run with bench/kernel-harness.sh; arguments:
//   N H W C k stride pad(0 valid, 1 same) isa(0 base, 1 avx2, 2 avx512) reps
//   [input offset] [output offset] [output buffers] (offsets in doubles from
//   a page boundary; several output buffers in turn make the output memory
//   cold, as R's outputs are, see the vignette). In the environment: NT=threads,
//   CF=1 for channels_first (dims are still given as N H W C), M=depth_multiplier,
//   D=dilation (rows and columns).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fast_plan.h"

using namespace depthwise;

namespace {
double* page_aligned(std::vector<double>& v, int offset) {
  const auto p = (reinterpret_cast<std::uintptr_t>(v.data()) + 4095) & ~std::uintptr_t(4095);
  return reinterpret_cast<double*>(p) + offset;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 10) {
    std::fprintf(stderr, "usage: %s N H W C k stride pad isa reps [in_off out_off buffers]\n", argv[0]);
    return 2;
  }
  const index_t dims[4] = {std::atol(argv[1]), std::atol(argv[2]), std::atol(argv[3]), std::atol(argv[4])};
  const int k = std::atoi(argv[5]), stride = std::atoi(argv[6]), pad = std::atoi(argv[7]);
  const int isa = std::atoi(argv[8]), reps = std::atoi(argv[9]);
  const int in_off = argc > 10 ? std::atoi(argv[10]) : 8;
  const int out_off = argc > 11 ? std::atoi(argv[11]) : 24;
  const int buffers = argc > 12 ? std::max(1, std::atoi(argv[12])) : 1;
  const int threads = std::getenv("NT") ? std::max(1, std::atoi(std::getenv("NT"))) : 1;
  const bool channels_first = std::getenv("CF") && std::atoi(std::getenv("CF")) == 1;
  const index_t mult = std::getenv("M") ? std::max(1, std::atoi(std::getenv("M"))) : 1;
  const int dilation = std::getenv("D") ? std::max(1, std::atoi(std::getenv("D"))) : 1;
  const index_t cf_dims[4] = {dims[0], dims[3], dims[1], dims[2]};

  Problem p;
  p.geometry = make_geometry(channels_first ? cf_dims : dims, k, k, stride, stride, dilation, dilation,
                             static_cast<Padding>(pad), mult, channels_first);
  std::vector<double> in_buf(p.geometry.in_size() + 4096), w(k * k * dims[3] * mult, 0.1),
      b(dims[3] * mult, 0.2);
  std::vector<std::vector<double>> out_bufs(buffers, std::vector<double>(p.geometry.out_size() + 4096));
  double* in = page_aligned(in_buf, in_off);
  for (index_t i = 0; i < p.geometry.in_size(); ++i) in[i] = 0.01 * (i % 97);
  p.input = in;
  p.kernel = w.data();
  p.bias = b.data();
  p.output = page_aligned(out_bufs[0], out_off);
  set_isa(static_cast<Isa>(isa));

  FastPlan plan;
  make_fast_plan(p, threads, plan);
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    plan.p.output = page_aligned(out_bufs[r % buffers], out_off);
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      std::vector<double> scratch(plan.scratch_doubles + 64);
      // Ranges of units, as the package's thread pool hands them out
      // (entry.cpp: a grain of units / (8 * threads)).
      const index_t grain = std::max<index_t>(1, plan.units / (8 * threads));
#pragma omp for schedule(dynamic, 1)
      for (index_t u = 0; u < plan.units; u += grain)
        run_fast_units(plan, u, std::min(plan.units, u + grain), scratch.data());
    }
    const auto t1 = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double flops = 2.0 * static_cast<double>(p.geometry.out_size()) * k * k;
  std::printf("isa=%s threads=%d min %.1f q25 %.1f median %.1f us, %.1f GFLOP/s at min\n",
              isa_name(static_cast<Isa>(isa)), threads, times[0], times[times.size() / 4],
              times[times.size() / 2], flops / times[0] / 1e3);
  return 0;
}
