/* How fast can this machine write an output that is not in cache?
 * R hands every call a different output block (see bench/NOTES.md), so a
 * layer's output lines are usually cold; this times ways of writing n
 * doubles into one of `bufs` buffers in turn (bufs * n * 8 bytes beyond the
 * L3 makes every write cold; bufs = 1 keeps it hot).
 *   gcc -O2 -mavx2 -o /tmp/cold-writes bench/cold-writes.c
 *   /tmp/cold-writes 451584 30     (mbv2_b's output, 3.6 MB, cold)
 * Modes: plain 32-byte stores; non-temporal stores; memset (rep stosb);
 * stores with a prefetch-for-write ahead; stores into an L1 stage copied
 * out with memcpy or rep movsb; memset then stores; clzero (AMD) then
 * stores, per 4 KB or for the whole block first. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void clzero_line(double* p) {
#if defined(__x86_64__)
  __asm__ volatile("clzero" ::"a"(p) : "memory");
#else
  memset(p, 0, 64);
#endif
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s doubles buffers\n", argv[0]);
    return 2;
  }
  const size_t n = (size_t)atol(argv[1]) / 8 * 8;
  const int nb = atoi(argv[2]), reps = 200;
  double** b = malloc(nb * sizeof(double*));
  for (int i = 0; i < nb; i++) {
    b[i] = aligned_alloc(64, n * 8 + 64);
    memset(b[i], 0, n * 8);
  }
  double* stage = aligned_alloc(64, 4096 * 8);
  const char* names[] = {"store", "stream", "memset", "store+prefetchw", "stage8K+memcpy",
                         "stage32K+repmovsb", "memset+store", "clzero4K+store", "clzero-all+store"};
  for (int mode = 0; mode < 9; mode++) {
    double best = 1e30, total = 0;
    for (int r = 0; r < reps; r++) {
      double* p = b[r % nb];
      const __m256d v = _mm256_set1_pd(r);
      const double t0 = now_us();
      if (mode == 0) {
        for (size_t i = 0; i < n; i += 4) _mm256_storeu_pd(p + i, v);
      } else if (mode == 1) {
        for (size_t i = 0; i < n; i += 4) _mm256_stream_pd(p + i, v);
        _mm_sfence();
      } else if (mode == 2) {
        memset(p, r & 1, n * 8);
      } else if (mode == 3) {
        for (size_t i = 0; i < n; i += 4) {
          if ((i & 7) == 0) __builtin_prefetch(p + i + 256, 1, 0);
          _mm256_storeu_pd(p + i, v);
        }
      } else if (mode == 4 || mode == 5) {
        const size_t chunk = mode == 5 ? 4096 : 1024;
        for (size_t i0 = 0; i0 < n; i0 += chunk) {
          const size_t m = n - i0 < chunk ? n - i0 : chunk;
          for (size_t i = 0; i < m; i += 4) _mm256_storeu_pd(stage + i, v);
          if (mode == 4) {
            memcpy(p + i0, stage, m * 8);
          } else {
            void* d = p + i0;
            const void* s = stage;
            size_t c = m * 8;
            __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(c)::"memory");
          }
        }
      } else if (mode == 6) {
        memset(p, 0, n * 8);
        for (size_t i = 0; i < n; i += 4) _mm256_storeu_pd(p + i, v);
      } else if (mode == 7) {
        for (size_t i0 = 0; i0 < n; i0 += 512) {
          const size_t m = n - i0 < 512 ? n - i0 : 512;
          for (size_t i = 0; i < m; i += 8) clzero_line(p + i0 + i);
          for (size_t i = 0; i < m; i += 4) _mm256_storeu_pd(p + i0 + i, v);
        }
      } else {
        for (size_t i = 0; i < n; i += 8) clzero_line(p + i);
        for (size_t i = 0; i < n; i += 4) _mm256_storeu_pd(p + i, v);
      }
      const double t = now_us() - t0;
      if (t < best) best = t;
      total += t;
    }
    printf("%-18s n=%zu bufs=%d  min %.1f us  mean %.1f us  %.1f GB/s at min\n", names[mode], n, nb, best,
           total / reps, n * 8 / best / 1e3);
  }
  return 0;
}
