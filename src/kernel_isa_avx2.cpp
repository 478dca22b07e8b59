// The fast kernels for x86-64 CPUs with AVX2 and FMA, selected at run time
// (kernel_fast.cpp); the package itself is built with R's baseline flags.
#include "simd.h"

#if DEPTHWISE_X86_DISPATCH
#define DW_NS isa_avx2
#define DW_VEC simd::VecAvx2
#define DW_TARGET DW_AVX2_ATTR
#include "kernel_impl.h"
#endif
