#include "output_alloc.h"
#include "kernels.h"
#include "thread_pool.h"

#include <R_ext/Rallocators.h>
#include <R_ext/Rdynload.h>
#include <Rinternals.h>

#include <R_ext/Memory.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <vector>

#if defined(__linux__)
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>
#define DEPTHWISE_CUSTOM_ALLOC 1
#else
#define DEPTHWISE_CUSTOM_ALLOC 0
#endif

namespace depthwise {

#if DEPTHWISE_CUSTOM_ALLOC
namespace {

// Outputs below this size use R's allocator (its small-vector pools and
// malloc reuse memory well enough there).
constexpr std::size_t min_custom_bytes = cold_output_bytes;
constexpr std::size_t max_cached_blocks = 1024;
constexpr std::uint64_t block_magic = 0x6477616c6c6f6321ULL;

// Written just before the pointer handed to R, so mem_free can find the
// mapping the block lives in.
struct BlockMeta {
  void* base;
  std::size_t length;
  std::uint64_t magic;
  std::uint64_t unused[5];
};
static_assert(sizeof(BlockMeta) == 64, "BlockMeta must be 64 bytes");

struct Mapping {
  void* base;
  std::size_t length;
};

// R does not count memory from allocVector3() towards its own collection
// trigger, so outputs that are already garbage would only be collected
// (and their blocks become reusable) when R's other allocations happen to
// trigger a collection. So when a request finds no cached block and at
// least gc_min / 2 bytes were handed out since the last collection,
// alloc_output() asks R for a collection of the youngest generation (where
// outputs that died since the last one are; R escalates to older
// generations on its own schedule) and looks again. Such a collection
// costs ~1.5-3 ms here whatever it frees, and returns the blocks of every
// output that died since the last one; so the rarer the collections the
// better, at the price of that many megabytes of dead outputs waiting.
// Measured on 3.6 MB outputs (~0.24 ms of compute each): a collection every
// 32 MB added ~0.2 ms per call on average, more than the compute. So
// gc_min doubles at every collection, up to the ceiling (every 512 MiB or
// an eighth of the cache cap), and the pool of blocks in circulation grows
// with it. Fresh pages cost more still (~0.5-2.5 ms per MB), so a run of
// misses (a new output size, or outputs kept by the caller) collects early:
// at most 4 fresh blocks in a row, or none when a block's fresh pages would
// cost more than 4 collections (~16 MB and up; such a block is also
// expensive to keep many of). A loop that calls a layer and drops its
// outputs gets back, at each collection, the blocks handed out since the
// one before, so its pool grows only by the fresh blocks of each cycle. A
// fresh block costs its pages once, a collection comes back every cycle,
// so a run of misses may also reach a quarter of the hits since the last
// collection: the pool grows by up to a quarter per cycle. Layer calls on
// 1 x 28 x 28 x 192 (1.2 MB outputs) in a loop: with runs of 4 the pool
// reached its size (~240 blocks) after ~7,000 calls, 74 collections in
// 10,000 calls; now after ~1,000 calls, 56 collections. A caller that
// keeps its outputs gets no hits, so it still collects every 4 misses.
// Collections promote the output the caller still holds; that block only
// returns at a collection of an older generation (see below).
constexpr std::size_t gc_min_floor = std::size_t(64) << 20;
constexpr std::size_t gc_min_ceiling = std::size_t(1) << 30;
constexpr double max_miss_run = 4;
constexpr double miss_run_per_hit = 0.25;

// Outputs that were alive at any collection have been promoted to an older
// generation, which a minor collection does not visit. That is the common
// case for large outputs: `y <- layer(x)` in a loop keeps the previous
// output alive through the next call, and R's own collections (which a
// large allocation brings forward) promote the output being returned.
// Such blocks come back only at a full collection, which costs tens of
// milliseconds (~30-45 ms measured here), while fresh pages cost from
// ~0.5 ms per MB (2 GB/s) to ~2.5 ms per MB (memory a virtual machine's
// host has not backed yet: 115 MB took 300 ms). So a miss for a large block
// runs a full collection when the blocks alive besides the newest one (the
// output the caller most likely still holds) could serve it and the
// measured cost of faulting in that many fresh pages exceeds the measured
// cost of a full collection. After a full collection that yields nothing
// (the caller is keeping its outputs), the next one waits until 8 such
// blocks, then twice as many bytes as last time, have been handed out; one
// that yields a block resets that.
constexpr std::size_t full_gc_min_bytes = std::size_t(4) << 20;

struct Cache {
  std::vector<Mapping> blocks;  // oldest first
  std::size_t cached_bytes = 0, live_bytes = 0, live_blocks = 0;
  double hits = 0, misses = 0, splits = 0, joins = 0;
  std::size_t cap = 0;
  std::size_t page = 4096;
  std::size_t pending_data_bytes = 0;  // data size of the allocation in progress
  std::size_t header_bytes = 256;       // R's header before the data (learnt by mem_alloc)
  std::size_t since_gc = 0;             // bytes handed out since the last collection
  std::size_t gc_min = gc_min_floor;    // since_gc that lets a miss collect first
  int miss_run = 0;                      // misses since the last hit or collection
  double hits_since_gc = 0;              // hits since the last collection
  double collections = 0;
  std::size_t last_bytes = 0;            // size of the newest block handed out
  double fault_seconds_per_byte = 0.5e-9;  // measured on fresh blocks (moving average)
  double full_gc_seconds = 0.03;           // measured (moving average)
  double minor_gc_seconds = 0.002;         // measured (moving average)
  std::size_t full_gc_wait = 0;          // bytes to hand out before the next full collection
  std::size_t full_gc_backoff = 0;       // the wait after the next failed one
  double full_collections = 0;
};

std::size_t default_cap() {
  // 1 GiB, or an eighth of physical memory when that is smaller.
  std::size_t cap = std::size_t(1) << 30;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) cap = std::min(cap, static_cast<std::size_t>(pages) / 8 * static_cast<std::size_t>(page));
  return cap;
}

// Never destroyed: R may free outputs while the process exits.
Cache& cache() {
  static Cache* c = [] {
    Cache* made = new Cache;
    made->cap = default_cap();
    // mem_free() runs inside R's collector, where an allocation failure
    // could not be reported: the list never needs to grow there.
    made->blocks.reserve(max_cached_blocks);
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0) made->page = static_cast<std::size_t>(page);
    return made;
  }();
  return *c;
}

std::size_t round_up(std::size_t v, std::size_t to) { return (v + to - 1) / to * to; }

void unmap(const Mapping& m) { munmap(m.base, m.length); }

// New blocks are plain anonymous mappings. Transparent huge pages
// (MADV_HUGEPAGE) were tried: with free huge pages at hand a fresh block
// faults in ~20x faster, but where memory is fragmented (THP defrag
// "madvise", the common default) every fault compacts memory synchronously
// and a 4 MiB block took ~10 ms instead of ~2 ms. Reuse of collected
// blocks is what removes the cost, so blocks are not madvised.
double now_seconds() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The pages of a fresh block are touched here, once, rather than by the
// kernels: the kernels would fault them in anyway, and timing it here gives
// this machine's cost of fresh memory, which decides when a full
// collection pays (see above).
void* map_block(std::size_t need, Mapping& m, Cache& c) {
  const std::size_t page = c.page;
  m.length = round_up(need, page);
  void* p = mmap(nullptr, m.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  m.base = p;
  if (m.length >= full_gc_min_bytes) {
    const double t0 = now_seconds();
    volatile char* bytes = static_cast<volatile char*>(p);
    for (std::size_t off = 0; off < m.length; off += page) bytes[off] = 0;
    const double rate = (now_seconds() - t0) / static_cast<double>(m.length);
    c.fault_seconds_per_byte = 0.5 * c.fault_seconds_per_byte + 0.5 * rate;
  }
  return p;
}

// Where a request can be served from the cache: `index` (blocks.size() when
// nowhere) and whether that block is split. Blocks are page ranges of our
// own anonymous mappings and munmap() takes any page range, so a piece of
// a block is a block like any other, and pieces that meet again are joined
// (mem_free). So outputs of mixed sizes (the layers of a model, the bench's
// rotation of shapes) reuse each other's faulted-in pages: the smallest
// larger block gives its first pages and keeps the rest. A block is handed
// out whole (the smallest such first) only when its spare is less than
// min_custom_bytes, which could never serve an output on its own. The
// price: a large block carved up for smaller outputs cannot serve a large
// request until its pieces come back and join again.
struct CacheFit {
  std::size_t index;
  bool split;
};

CacheFit find_cached(const Cache& c, std::size_t need) {
  const std::size_t none = c.blocks.size();
  const std::size_t taken = round_up(need, c.page);
  std::size_t whole = none, larger = none;
  for (std::size_t k = 0; k < c.blocks.size(); ++k) {
    const std::size_t len = c.blocks[k].length;
    if (len < taken) continue;
    if (len < taken + min_custom_bytes) {
      if (whole == none || len < c.blocks[whole].length) whole = k;
    } else if (larger == none || len < c.blocks[larger].length) {
      larger = k;
    }
  }
  if (whole != none) return {whole, false};
  return {larger, larger != none};
}

bool found(const Cache& c, const CacheFit& fit) { return fit.index < c.blocks.size(); }

void* mem_alloc(R_allocator_t*, std::size_t size) {
  Cache& c = cache();
  // R's header (allocator copy, vector header) comes first, then the data;
  // place the block so the data starts on a 64-byte boundary.
  const std::size_t header = size >= c.pending_data_bytes ? size - c.pending_data_bytes : 0;
  c.header_bytes = header;
  const std::size_t need = sizeof(BlockMeta) + 64 + size;
  Mapping m{nullptr, 0};
  const CacheFit fit = find_cached(c, need);
  if (found(c, fit)) {
    Mapping& cached = c.blocks[fit.index];
    const std::size_t taken = fit.split ? round_up(need, c.page) : cached.length;
    if (fit.split) {  // taken < cached.length: both are whole pages
      m = Mapping{cached.base, taken};
      cached.base = static_cast<char*>(cached.base) + taken;
      cached.length -= taken;
      c.splits += 1;
    } else {
      m = cached;
      c.blocks.erase(c.blocks.begin() + static_cast<std::ptrdiff_t>(fit.index));
    }
    c.cached_bytes -= taken;
    c.hits += 1;
    c.hits_since_gc += 1;
    c.miss_run = 0;
  } else {
    if (!map_block(need, m, c)) {
      // Out of address space or memory: give cached blocks back and retry once.
      release_output_cache();
      if (!map_block(need, m, c)) return nullptr;
    }
    c.misses += 1;
    c.miss_run += 1;
  }
  const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(m.base);
  const std::uintptr_t data = round_up(base + sizeof(BlockMeta) + header, 64);
  char* block = reinterpret_cast<char*>(data - header);
  BlockMeta* meta = reinterpret_cast<BlockMeta*>(block - sizeof(BlockMeta));
  meta->base = m.base;
  meta->length = m.length;
  meta->magic = block_magic;
  c.live_bytes += m.length;
  c.live_blocks += 1;
  c.last_bytes = m.length;
  return block;
}

void mem_free(R_allocator_t*, void* block) {
  if (!block) return;
  Cache& c = cache();
  BlockMeta* meta = reinterpret_cast<BlockMeta*>(static_cast<char*>(block) - sizeof(BlockMeta));
  if (meta->magic != block_magic) return;  // not ours: never happens; do no harm
  meta->magic = 0;
  Mapping m{meta->base, meta->length};
  c.live_bytes -= m.length;
  c.live_blocks -= 1;
  // Join the cached neighbours of the block (pieces split off it, or
  // mappings the kernel placed next to it), so that splitting does not
  // leave the cache only small pieces for the larger outputs. One pass
  // finds both: a join moves only the edge it joined at. A join that would
  // outgrow the cap is skipped, so that the cap check below does not throw
  // the neighbours' pages away with the block. (A joined range may span
  // two mappings: munmap() takes it.)
  for (std::size_t k = 0; k < c.blocks.size();) {
    const Mapping& b = c.blocks[k];
    char* const b_end = static_cast<char*>(b.base) + b.length;
    char* const m_end = static_cast<char*>(m.base) + m.length;
    if ((b_end == m.base || m_end == b.base) && m.length + b.length <= c.cap) {
      m = Mapping{b_end == m.base ? b.base : m.base, m.length + b.length};
      c.cached_bytes -= b.length;
      c.blocks.erase(c.blocks.begin() + static_cast<std::ptrdiff_t>(k));
      c.joins += 1;
    } else {
      ++k;
    }
  }
  if (m.length > c.cap) {
    unmap(m);
    return;
  }
  while (!c.blocks.empty() &&
         (c.cached_bytes + m.length > c.cap || c.blocks.size() >= max_cached_blocks)) {
    unmap(c.blocks.front());
    c.cached_bytes -= c.blocks.front().length;
    c.blocks.erase(c.blocks.begin());
  }
  c.blocks.push_back(m);
  c.cached_bytes += m.length;
}

R_allocator_t allocator = {mem_alloc, mem_free, nullptr, nullptr};

// base::gc(verbose = FALSE, reset = FALSE, full = FALSE).
void minor_gc() {
  SEXP fn = PROTECT(Rf_findFun(Rf_install("gc"), R_BaseEnv));
  SEXP call = PROTECT(Rf_lang4(fn, Rf_ScalarLogical(FALSE), Rf_ScalarLogical(FALSE), Rf_ScalarLogical(FALSE)));
  Rf_eval(call, R_BaseEnv);
  UNPROTECT(2);
}

}  // namespace

SEXP alloc_output(R_xlen_t n) {
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(double);
  if (bytes < min_custom_bytes) return Rf_allocVector(REALSXP, n);
  Cache& c = cache();
  // What mem_alloc() will ask for, with the size of R's header seen there
  // (an upper bound before the first call): a bound of a few hundred bytes
  // fell on the next page for some sizes, and a cached block of exactly
  // the right size then looked absent and could bring on a collection.
  const std::size_t need = sizeof(BlockMeta) + 64 + c.header_bytes + bytes;
  // (Half of gc_min: a collection frees about what was handed out since
  // the last one, minus outputs still in use or promoted to an older
  // generation; waiting for all of gc_min would add fresh blocks to every
  // cycle.) Misses in between grow the pool of blocks in circulation.
  if (!found(c, find_cached(c, need))) {
    bool collected = false;
    // A block whose fresh pages cost several collections is not worth
    // waiting for: collect at once if any output that could serve is alive.
    const bool costly_miss = static_cast<double>(need) * c.fault_seconds_per_byte >= 4 * c.minor_gc_seconds &&
                             c.live_bytes >= need;
    const double miss_run_limit = std::max(max_miss_run, miss_run_per_hit * c.hits_since_gc);
    if (2 * c.since_gc >= c.gc_min || c.miss_run >= miss_run_limit || costly_miss) {
      const double t0 = now_seconds();
      minor_gc();  // returns unreachable outputs' blocks to the cache
      c.minor_gc_seconds = 0.5 * c.minor_gc_seconds + 0.5 * (now_seconds() - t0);
      c.gc_min = std::min({2 * c.gc_min, gc_min_ceiling, std::max(gc_min_floor, c.cap / 2)});
      c.since_gc = 0;
      c.miss_run = 0;
      c.hits_since_gc = 0;
      c.collections += 1;
      collected = true;
    }
    // Only after a minor collection came back empty-handed: its blocks are
    // in an older generation, if they are garbage at all.
    if (collected && bytes >= full_gc_min_bytes && c.live_bytes >= need + c.last_bytes && c.full_gc_wait == 0 &&
        static_cast<double>(need) * c.fault_seconds_per_byte > c.full_gc_seconds &&
        !found(c, find_cached(c, need))) {
      const double t0 = now_seconds();
      R_gc();
      c.full_gc_seconds = 0.5 * c.full_gc_seconds + 0.5 * (now_seconds() - t0);
      c.full_collections += 1;
      c.since_gc = 0;
      if (!found(c, find_cached(c, need))) {
        c.full_gc_backoff = std::max(2 * c.full_gc_backoff, 8 * need);
        c.full_gc_wait = c.full_gc_backoff;
      } else {
        c.full_gc_backoff = 0;
      }
    }
  }
  c.full_gc_wait -= std::min(c.full_gc_wait, bytes);
  c.since_gc += bytes;
  c.pending_data_bytes = bytes;
  return Rf_allocVector3(REALSXP, n, &allocator);
}

OutputCacheStats output_cache_stats() {
  const Cache& c = cache();
  OutputCacheStats s;
  s.cached_bytes = static_cast<double>(c.cached_bytes);
  s.live_bytes = static_cast<double>(c.live_bytes);
  s.cached_blocks = static_cast<double>(c.blocks.size());
  s.live_blocks = static_cast<double>(c.live_blocks);
  s.hits = c.hits;
  s.misses = c.misses;
  s.splits = c.splits;
  s.joins = c.joins;
  s.cap_bytes = static_cast<double>(c.cap);
  s.collections = c.collections;
  s.full_collections = c.full_collections;
  s.fault_ns_per_byte = 1e9 * c.fault_seconds_per_byte;
  s.full_gc_ms = 1e3 * c.full_gc_seconds;
  s.enabled = true;
  return s;
}

void release_output_cache() {
  Cache& c = cache();
  for (const Mapping& m : c.blocks) unmap(m);
  c.blocks.clear();
  c.cached_bytes = 0;
  c.hits_since_gc = 0;  // the pool those hits measured is gone
}

void set_full_gc_estimate(double seconds) {
  Cache& c = cache();
  c.full_gc_seconds = seconds < 0 ? 0 : seconds;
  c.full_gc_wait = c.full_gc_backoff = 0;  // the policy starts afresh
}

double set_output_cache_cap(double bytes) {
  Cache& c = cache();
  const double old = static_cast<double>(c.cap);
  c.cap = bytes <= 0 ? 0 : static_cast<std::size_t>(bytes);
  while (!c.blocks.empty() && c.cached_bytes > c.cap) {
    unmap(c.blocks.front());
    c.cached_bytes -= c.blocks.front().length;
    c.blocks.erase(c.blocks.begin());
  }
  return old;
}

// Outputs made by mem_alloc keep a pointer to mem_free, which R calls when
// it collects them. If the package's shared library were unloaded while
// such outputs are alive, that pointer would dangle; so on unload the
// library is kept in memory (RTLD_NODELETE) when any of them is alive.
bool pin_library_if_needed() {
  release_output_cache();
  if (cache().live_blocks == 0) return false;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&mem_free), &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  return true;
}

#else  // no custom allocator on this platform

SEXP alloc_output(R_xlen_t n) { return Rf_allocVector(REALSXP, n); }
OutputCacheStats output_cache_stats() { return OutputCacheStats(); }
void release_output_cache() {}
double set_output_cache_cap(double) { return 0; }
void set_full_gc_estimate(double) {}
bool pin_library_if_needed() { return false; }

#endif

}  // namespace depthwise

// The workers run this library's code, so they stop before it goes.
extern "C" void R_unload_depthwise(DllInfo*) {
  depthwise::shutdown_thread_pool();
  depthwise::pin_library_if_needed();
}
