// The fast kernels at the baseline instruction set (every CPU R runs on).
#define DW_NS isa_base
#define DW_VEC simd::VecBase
#define DW_TARGET
#include "kernel_impl.h"
