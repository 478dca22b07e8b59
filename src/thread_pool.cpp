#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define DEPTHWISE_HAVE_ATFORK 1
#else
#define DEPTHWISE_HAVE_ATFORK 0
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace depthwise {
namespace {

// How long an idle worker spins before it sleeps: covers the R code between
// two layer calls (tens of microseconds) and a collection (1-2 ms here).
constexpr std::chrono::microseconds spin_time(2000);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

class Pool {
 public:
  void run(int threads, index_t units, index_t grain, UnitRangeFn fn, void* ctx) {
    const int helpers = forked_child_ ? 0 : threads - 1;
    if (helpers <= 0 || units <= grain) {
      fn(ctx, 0, units);
      return;
    }
    grow(helpers);
    if (workers_.empty()) {
      fn(ctx, 0, units);
      return;
    }
    busy_.store(true, std::memory_order_release);
    fn_ = fn;
    ctx_ = ctx;
    units_ = units;
    grain_ = std::max<index_t>(1, grain);
    next_.store(0, std::memory_order_relaxed);
    wanted_ = helpers;
    // Every worker checks in once per job, whether it takes units or not,
    // so that none can still be reading this job's fields when run() returns.
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    take_units();
    for (unsigned spins = 1; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins % 1024 == 0) std::this_thread::yield();
      else cpu_relax();
    }
    busy_.store(false, std::memory_order_release);
  }

  void shutdown() {
    // A forked child has no workers, and its copy of the mutex may have been
    // held by one of the parent's at the fork.
    if (forked_child_) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true, std::memory_order_seq_cst);
      wake_.notify_all();
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stopping_.store(false, std::memory_order_seq_cst);
  }

  int workers() const { return static_cast<int>(workers_.size()); }

  // Before fork(): stop the workers, so that the child inherits no thread
  // state (memory only a thread that does not exist in the child could
  // free) and the mutex is free. They start again at the next parallel job.
  // Not while a job runs (a fork from another thread): the child then
  // inherits the workers' state and forgets it (below).
  void before_fork() {
    if (!busy_.load(std::memory_order_acquire) && !forked_child_) shutdown();
  }

  // In the child: workers that were running at the fork do not exist here.
  // Their std::thread objects must never be joined or destroyed, so they are
  // kept aside. The child runs its jobs on its own thread: it is usually one
  // of several processes already sharing the cores (parallel::mclapply).
  void after_fork_in_child() {
    if (!workers_.empty()) orphans_ = new std::vector<std::thread>(std::move(workers_));
    workers_.clear();
    forked_child_ = true;
  }

 private:
  // Starts workers up to `helpers` (fewer if the system refuses threads).
  // A new worker starts from the current generation, which run() changes
  // only after this: it takes part in the job being published.
  void grow(int helpers) {
    const std::uint64_t current = generation_.load(std::memory_order_acquire);
    while (static_cast<int>(workers_.size()) < helpers) {
      const int index = static_cast<int>(workers_.size());
      try {
        workers_.emplace_back([this, index, current] { work_loop(index, current); });
      } catch (...) {
        return;
      }
    }
  }

  void take_units() {
    for (;;) {
      const index_t first = next_.fetch_add(grain_, std::memory_order_relaxed);
      if (first >= units_) return;
      fn_(ctx_, first, std::min(units_, first + grain_));
    }
  }

  void work_loop(int index, std::uint64_t seen) {
    for (;;) {
      wait_for_job(seen);
      if (stopping_.load(std::memory_order_acquire)) return;
      seen = generation_.load(std::memory_order_acquire);
      if (index < wanted_) take_units();
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void wait_for_job(std::uint64_t seen) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned spins = 1;; ++spins) {
      if (generation_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_acquire))
        return;
      if (spins % 256 == 0 && std::chrono::steady_clock::now() - start > spin_time) break;
      cpu_relax();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    wake_.wait(lock, [&] {
      return generation_.load(std::memory_order_seq_cst) != seen || stopping_.load(std::memory_order_seq_cst);
    });
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> busy_{false};
  bool forked_child_ = false;
  std::vector<std::thread>* orphans_ = nullptr;  // see after_fork_in_child()
  // The job: written by run() before the generation changes, read by the
  // workers after they see the change.
  UnitRangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  index_t units_ = 0, grain_ = 1;
  int wanted_ = 0;
  std::atomic<index_t> next_{0};
};

Pool& pool();

#if DEPTHWISE_HAVE_ATFORK
void before_fork() { pool().before_fork(); }
void after_fork_in_child() { pool().after_fork_in_child(); }
#endif

// Never destroyed: workers may outlive static destruction at exit.
Pool& pool() {
  static Pool* p = [] {
    Pool* made = new Pool;
#if DEPTHWISE_HAVE_ATFORK
    pthread_atfork(before_fork, nullptr, after_fork_in_child);
#endif
    return made;
  }();
  return *p;
}

}  // namespace

void run_parallel(int threads, index_t units, index_t grain, UnitRangeFn fn, void* ctx) {
  pool().run(threads, units, grain, fn, ctx);
}

void shutdown_thread_pool() { pool().shutdown(); }

int thread_pool_workers() { return pool().workers(); }

}  // namespace depthwise
