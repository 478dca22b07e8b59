// The fast kernels for x86-64 CPUs with AVX-512F/VL, selected at run time:
// 256-bit vectors as in AVX2, but 32 registers (larger register tiles) and
// masked loads and stores.
#include "simd.h"

#if DEPTHWISE_X86_DISPATCH
#define DW_NS isa_avx512
#define DW_VEC simd::VecAvx512
#define DW_TARGET DW_AVX512_ATTR
#include "kernel_impl.h"
#endif
