/* AVX-512 VNNI kernels (level 2): vpdpbusd on 256-bit vectors (AVX512VL). */
#if defined(__x86_64__)
#define CK_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define CK_FN(n) n##_avx512
#define CK_VNNI 1
#include "ck_simd_impl.h"
#endif
