/* AVX2 + FMA + F16C kernels (level 1). */
#if defined(__x86_64__)
#define CK_TARGET __attribute__((target("avx2,fma,f16c")))
#define CK_FN(n) n##_avx2
#define CK_VNNI 0
#include "ck_simd_impl.h"
#endif
