// R entry points. R has validated every argument before it gets here; the
// checks below are a second line that turns anything unexpected into a
// classed R error (via geometry_error) rather than undefined behaviour.
#include <Rcpp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <string>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fast_plan.h"
#include "kernels.h"
#include "output_alloc.h"
#include "thread_pool.h"

using namespace depthwise;

namespace {

Padding padding_from(int code) {
  if (code != 0 && code != 1) throw geometry_error("padding code must be 0 or 1");
  return static_cast<Padding>(code);
}

Activation activation_from(int code) {
  if (code < 0 || code >= static_cast<int>(Activation::count))
    throw geometry_error("unknown activation code");
  return static_cast<Activation>(code);
}

// Scalar arguments arrive as SEXP, not int/bool, because Rcpp's own
// conversion casts an out-of-range double to int (undefined behaviour) and
// reads NA as TRUE. These accept one non-NA logical, integer or double value.
double scalar_number(SEXP v, const std::string& what) {
  if (Rf_xlength(v) != 1) throw geometry_error(what + " must be a single value");
  switch (TYPEOF(v)) {
    case LGLSXP:
      if (LOGICAL(v)[0] == NA_LOGICAL) break;
      return LOGICAL(v)[0];
    case INTSXP:
      if (INTEGER(v)[0] == NA_INTEGER) break;
      return INTEGER(v)[0];
    case REALSXP:
      if (std::isnan(REAL(v)[0])) break;
      return REAL(v)[0];
    default:
      throw geometry_error(what + " must be numeric or logical");
  }
  throw geometry_error(what + " is NA");
}

int int_arg(SEXP v, const std::string& what, int lo, int hi) {
  const double d = scalar_number(v, what);
  if (!(d >= lo && d <= hi) || d != std::floor(d))
    throw geometry_error(what + " must be a whole number from " + std::to_string(lo) + " to " +
                         std::to_string(hi));
  return static_cast<int>(d);
}

bool flag_arg(SEXP v, const std::string& what) {
  const double d = scalar_number(v, what);
  if (d != 0 && d != 1) throw geometry_error(what + " must be TRUE or FALSE");
  return d != 0;
}

// Never start more threads than the OpenMP limits and the processors allow:
// asking libgomp for, say, 100000 threads crashes the process.
int usable_threads(int requested) {
  if (requested <= 1) return 1;  // (omp_get_num_procs() is a system call)
#ifdef _OPENMP
  const int cap = std::max(1, std::min({omp_get_thread_limit(), omp_get_max_threads(),
                                        omp_get_num_procs()}));
  return std::min(requested, cap);
#else
  (void)requested;
  return 1;
#endif
}

// R integer/double vector of whole numbers -> index_t, with a bound check.
index_t whole_at(SEXP v, R_xlen_t k, const char* what) {
  double d;
  if (TYPEOF(v) == INTSXP) {
    const int i = INTEGER(v)[k];
    if (i == NA_INTEGER) throw geometry_error(std::string(what) + " is NA");
    d = i;
  } else if (TYPEOF(v) == REALSXP) {
    d = REAL(v)[k];
  } else {
    throw geometry_error(std::string(what) + " must be numeric");
  }
  if (!(d >= 0 && d <= 9.0e15) || d != static_cast<double>(static_cast<index_t>(d)))
    throw geometry_error(std::string(what) + " must be a non-negative whole number");
  return static_cast<index_t>(d);
}

struct Pair {
  index_t first, second;
};

Pair pair_from(SEXP v, const char* what) {
  if (Rf_xlength(v) != 2) throw geometry_error(std::string(what) + " must have length 2");
  return {whole_at(v, 0, what), whole_at(v, 1, what)};
}

Geometry geometry_from(SEXP in_dims, Pair kernel_size, SEXP strides, SEXP dilation,
                       int padding, index_t multiplier, bool channels_first) {
  if (Rf_xlength(in_dims) != 4) throw geometry_error("input must have 4 dimensions");
  index_t dims[4];
  for (int k = 0; k < 4; ++k) dims[k] = whole_at(in_dims, k, "input dimension");
  const Pair s = pair_from(strides, "strides");
  const Pair d = pair_from(dilation, "dilation_rate");
  return make_geometry(dims, kernel_size.first, kernel_size.second, s.first, s.second, d.first,
                       d.second, padding_from(padding), multiplier, channels_first);
}

// Per-thread scratch for the kernels (up to about a megabyte), kept between
// calls: allocating and zero-filling it on every call cost page faults.
// Grows, never shrinks; contents are not initialised.
double* thread_scratch(std::size_t n) {
  thread_local std::unique_ptr<double[]> buffer;
  thread_local std::size_t size = 0;
  if (size < n) {
    buffer.reset(new double[n]);
    size = n;
  }
  return buffer.get();
}

struct FastJob {
  const FastPlan* plan;
  index_t first;     // unit of the job's index 0
  std::size_t need;  // scratch doubles per thread
};

// One range of a job's units, on whichever thread takes it.
void run_job_units(void* ctx, index_t first, index_t last) {
  const FastJob& job = *static_cast<const FastJob*>(ctx);
  run_fast_units(*job.plan, job.first + first, job.first + last, thread_scratch(job.need));
}

// Work per chunk between interrupt checks: a few milliseconds.
constexpr double work_per_chunk = 16777216.0;

// Plans the call, then runs its units in chunks: each chunk in parallel on
// the worker pool (thread_pool.h; no R API inside), with an interrupt check
// between chunks. Units write disjoint outputs and compute each element the
// same way wherever it runs, so the result does not depend on `threads`.
void run_fast(const Problem& p, int threads) {
  FastPlan plan;
  make_fast_plan(p, threads, plan);
  if (plan.use_reference) {
    forward_reference(p);
    return;
  }
  const index_t units = plan.units;
  if (units <= 1) threads = 1;
  const index_t by_work = static_cast<index_t>(work_per_chunk / std::max(1.0, plan.unit_work));
  const index_t chunk = std::max<index_t>(threads, std::min<index_t>(units, by_work));
  const std::size_t need = static_cast<std::size_t>(plan.scratch_doubles);
  FastJob job{&plan, 0, need};
  for (index_t first = 0; first < units; first += chunk) {
    const index_t last = std::min(units, first + chunk);
    job.first = first;
    // About 8 chunks per thread: small enough to even out a thread that
    // the machine holds up, large enough to keep the hand-out cheap.
    const index_t grain = std::max<index_t>(1, (last - first) / (8 * static_cast<index_t>(threads)));
    run_parallel(threads, last - first, grain, run_job_units, &job);
    if (last < units) Rcpp::checkUserInterrupt();  // between parallel jobs
  }
}

}  // namespace

// Names of the activations the kernels know, in code order (code = position - 1).
// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector dw_activation_names() {
  const char* const* names = activation_names();
  Rcpp::CharacterVector out(static_cast<int>(Activation::count));
  for (int k = 0; k < static_cast<int>(Activation::count); ++k) out[k] = names[k];
  return out;
}

// Output dims and paddings: c(dims[4], pad_top, pad_bottom, pad_left, pad_right).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector dw_output_geometry(SEXP in_dims, SEXP kernel_size, SEXP strides,
                                       SEXP dilation, SEXP padding, SEXP multiplier,
                                       SEXP channels_first) {
  if (Rf_xlength(multiplier) != 1) throw geometry_error("depth_multiplier must be one number");
  const Geometry g = geometry_from(in_dims, pair_from(kernel_size, "kernel_size"), strides,
                                   dilation, int_arg(padding, "padding", 0, 1),
                                   whole_at(multiplier, 0, "depth_multiplier"),
                                   flag_arg(channels_first, "channels_first"));
  index_t dims[4];
  g.out_dims(dims);
  Rcpp::NumericVector out(8);
  for (int k = 0; k < 4; ++k) out[k] = static_cast<double>(dims[k]);
  out[4] = static_cast<double>(g.rows.pad_before);
  out[5] = static_cast<double>(g.rows.pad_after);
  out[6] = static_cast<double>(g.cols.pad_before);
  out[7] = static_cast<double>(g.cols.pad_after);
  return out;
}

// The forward pass. `x` is a double array whose dim() is in the data format's
// order; `kernel` a double array (kh, kw, C, M); `bias` NULL or double C * M.
SEXP forward(SEXP x, SEXP kernel, SEXP bias, SEXP strides, SEXP dilation, SEXP padding,
             SEXP channels_first, SEXP activation, SEXP threads, SEXP reference) {
  // Scalars first, so that nothing is allocated for a call that will fail.
  const int padding_code = int_arg(padding, "padding", 0, 1);
  const bool first = flag_arg(channels_first, "channels_first");
  const Activation act = activation_from(
      int_arg(activation, "activation", 0, static_cast<int>(Activation::count) - 1));
  const int n_threads = usable_threads(int_arg(threads, "threads", 1, INT_MAX));
  const bool use_reference = flag_arg(reference, "reference");
  if (TYPEOF(x) != REALSXP || TYPEOF(kernel) != REALSXP)
    throw geometry_error("input and kernel must be double");
  if (bias != R_NilValue && TYPEOF(bias) != REALSXP) throw geometry_error("bias must be double");
  SEXP kdims = Rf_getAttrib(kernel, R_DimSymbol);
  if (TYPEOF(kdims) != INTSXP || Rf_xlength(kdims) != 4) throw geometry_error("kernel must have 4 dimensions");
  SEXP xdims = Rf_getAttrib(x, R_DimSymbol);
  const int* kd = INTEGER(kdims);
  const Geometry g = geometry_from(xdims, {kd[0], kd[1]}, strides, dilation, padding_code, kd[3],
                                   first);
  if (kd[2] != g.channels)
    throw geometry_error("kernel channels do not match the input's channels");
  if (Rf_xlength(x) != g.in_size()) throw geometry_error("input length does not match its dim");
  if (Rf_xlength(kernel) != g.kernel_size()) throw geometry_error("kernel length does not match its dim");
  if (bias != R_NilValue && Rf_xlength(bias) != g.out_channels())
    throw geometry_error("bias length must be channels * depth_multiplier");
  index_t dims[4];
  g.out_dims(dims);
  for (int k = 0; k < 4; ++k)
    if (dims[k] > INT_MAX) throw geometry_error("an output dimension exceeds R's limit of 2^31 - 1");

  // Read-only pointers: REAL() on an ALTREP wrapper (what attributes<- makes
  // of an array with dimnames) would copy the whole input first. Expanding a
  // compact ALTREP sequence still allocates and can raise an R error, so this
  // comes before the output exists, where such an error leaks nothing.
  const double* input = REAL_RO(x);
  const double* weights = REAL_RO(kernel);
  const double* bias_values = bias == R_NilValue ? nullptr : REAL_RO(bias);

  // Large outputs come from the recycling allocator (output_alloc.h).
  Rcpp::NumericVector out(alloc_output(static_cast<R_xlen_t>(g.out_size())));
  Rcpp::IntegerVector out_dim(4);
  for (int k = 0; k < 4; ++k) out_dim[k] = static_cast<int>(dims[k]);
  out.attr("dim") = out_dim;
  if (g.out_size() == 0) return out;

  Problem p;
  p.geometry = g;
  p.input = input;
  p.kernel = weights;
  p.bias = bias_values;
  p.output = out.begin();
  p.activation = act;
  if (use_reference) {
    forward_reference(p);
  } else {
    run_fast(p, n_threads);
  }
  activate_last_axis(p.activation, p.output, dims);
  return out;
}

// The forward pass for R callers (see forward()). A C++ error comes back as
// its message, a string of class "depthwise_cpp_failure", instead of being
// raised: the layer then needs no tryCatch() around every call (~5 us, a
// quarter of a small call). Interrupts and R errors still propagate as R
// conditions.
// [[Rcpp::export(rng = false)]]
SEXP dw_forward(SEXP x, SEXP kernel, SEXP bias, SEXP strides, SEXP dilation, SEXP padding,
                SEXP channels_first, SEXP activation, SEXP threads, SEXP reference) {
  std::string message;
  try {
    return forward(x, kernel, bias, strides, dilation, padding, channels_first, activation, threads,
                   reference);
  } catch (const std::exception& e) {
    message = e.what();
  }
  Rcpp::CharacterVector failure = Rcpp::CharacterVector::create(message);
  failure.attr("class") = "depthwise_cpp_failure";
  return failure;
}

// Applies one of the kernels' activations to a double array (used by tests
// and by R-level code that needs the same function without a convolution).
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector dw_activate(SEXP x, SEXP activation) {
  const Activation a = activation_from(
      int_arg(activation, "activation", 0, static_cast<int>(Activation::count) - 1));
  if (TYPEOF(x) != REALSXP) throw geometry_error("x must be a double vector");
  Rcpp::NumericVector out = Rcpp::clone(Rcpp::NumericVector(x));
  if (is_axis_activation(a)) {
    SEXP d = Rf_getAttrib(x, R_DimSymbol);
    index_t dims[4] = {1, 1, 1, Rf_xlength(x)};
    if (Rf_xlength(d) == 4)
      for (int k = 0; k < 4; ++k) dims[k] = INTEGER(d)[k];
    activate_last_axis(a, out.begin(), dims);
  } else {
    activate_span(a, out.begin(), Rf_xlength(out));
  }
  return out;
}

// Threads the OpenMP runtime would allow (1 when built without OpenMP).
// [[Rcpp::export(rng = false)]]
int dw_max_threads() {
#ifdef _OPENMP
  return std::max(1, std::min(omp_get_thread_limit(), omp_get_max_threads()));
#else
  return 1;
#endif
}

// What the thread count depends on besides the option: the variables
// get_depthwise_threads() reads and dw_max_threads(), in one string. Read
// here on every large call because Sys.getenv() on four names costs ~2 us.
// [[Rcpp::export(rng = false)]]
std::string dw_thread_key() {
  std::string key = std::to_string(dw_max_threads());
  for (const char* name : {"DEPTHWISE_NUM_THREADS", "OMP_THREAD_LIMIT", "OMP_NUM_THREADS", "_R_CHECK_LIMIT_CORES_"}) {
    const char* value = std::getenv(name);
    key += '\x1f';
    if (value) key += value;
  }
  return key;
}

// Instruction set of the fast kernels: c(active = , detected = ).
// [[Rcpp::export(rng = false)]]
Rcpp::CharacterVector dw_isa() {
  Rcpp::CharacterVector out = Rcpp::CharacterVector::create(
      Rcpp::Named("active") = isa_name(active_isa()),
      Rcpp::Named("detected") = isa_name(detected_isa()));
  return out;
}

// Lowers the fast kernels' instruction set ("baseline", "avx2", "avx512";
// clamped to what the CPU has) and returns the previous one. For tests and
// benchmarks of the dispatch paths.
// [[Rcpp::export(rng = false)]]
std::string dw_set_isa(std::string name) {
  Isa want = Isa::base;
  if (name == "avx512") want = Isa::avx512;
  else if (name == "avx2") want = Isa::avx2;
  else if (name != "baseline") throw geometry_error("unknown instruction set: " + name);
  return isa_name(set_isa(want));
}

// The output allocator's cache (see output_alloc.h): bytes and blocks cached
// and alive, hits (splits: those served by a piece of a larger block),
// misses, joins of returning blocks with cached neighbours, collections,
// the measured costs, the cap.
// `release = TRUE` first gives every cached block back to the OS; a
// non-NULL `cap_bytes` sets the cap, `full_gc_ms` the cost estimate of a
// full collection.
// [[Rcpp::export(rng = false)]]
Rcpp::NumericVector dw_output_cache(bool release = false, SEXP cap_bytes = R_NilValue,
                                    SEXP full_gc_ms = R_NilValue) {
  if (release) release_output_cache();
  if (cap_bytes != R_NilValue) set_output_cache_cap(Rcpp::as<double>(cap_bytes));
  if (full_gc_ms != R_NilValue) set_full_gc_estimate(Rcpp::as<double>(full_gc_ms) / 1e3);
  const OutputCacheStats s = output_cache_stats();
  return Rcpp::NumericVector::create(
      Rcpp::Named("enabled") = s.enabled ? 1 : 0, Rcpp::Named("cached_bytes") = s.cached_bytes,
      Rcpp::Named("cached_blocks") = s.cached_blocks, Rcpp::Named("live_bytes") = s.live_bytes,
      Rcpp::Named("live_blocks") = s.live_blocks, Rcpp::Named("hits") = s.hits,
      Rcpp::Named("misses") = s.misses, Rcpp::Named("splits") = s.splits, Rcpp::Named("joins") = s.joins,
      Rcpp::Named("collections") = s.collections,
      Rcpp::Named("full_collections") = s.full_collections,
      Rcpp::Named("fault_ns_per_byte") = s.fault_ns_per_byte, Rcpp::Named("full_gc_ms") = s.full_gc_ms,
      Rcpp::Named("cap_bytes") = s.cap_bytes);
}

// Worker threads the pool has started (thread_pool.h); for tests.
// [[Rcpp::export(rng = false)]]
int dw_thread_pool_workers() { return thread_pool_workers(); }
