// A small pool of worker threads for the forward pass.
//
// Why not OpenMP's parallel region: libgomp's workers go to sleep between
// calls, and waking them costs more than a mid-size call gains from them
// (1 x 56 x 56 x 144 at 2 threads: median 202-234 us with the default wait
// policy, 136 us with OMP_WAIT_POLICY=active, against 240 us at 1 thread).
// A package cannot set that policy: libgomp reads it when R starts. Here a
// worker spins (with a pause instruction) for a short while after each job,
// long enough to bridge the R code between two calls, and then sleeps, so
// an idle session uses no CPU.
//
// Work is split dynamically: units are handed out in small chunks from an
// atomic counter, so a thread that the machine preempts does not hold the
// others up. Which thread computes a unit does not change its result.
//
// fork() (parallel::mclapply) first stops the workers, so the child
// inherits no thread state; the child runs every job on its calling thread
// (it is usually one of several processes sharing the cores already), and
// the parent starts its workers again at its next parallel job.
#ifndef DEPTHWISE_THREAD_POOL_H
#define DEPTHWISE_THREAD_POOL_H

#include "geometry.h"

namespace depthwise {

// Runs fn(ctx, first, last) over [0, units) on up to `threads` threads (the
// caller's included), in chunks of at most `grain` units; returns when
// every unit is done. fn must not call the R API or throw.
typedef void (*UnitRangeFn)(void* ctx, index_t first, index_t last);
void run_parallel(int threads, index_t units, index_t grain, UnitRangeFn fn, void* ctx);

// Stops and joins the workers (before the shared library is unloaded).
void shutdown_thread_pool();

// Workers started so far (for tests).
int thread_pool_workers();

}  // namespace depthwise

#endif
