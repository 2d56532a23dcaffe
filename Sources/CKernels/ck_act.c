/* Activation kernels: the tanh-approximated GELU of a gate times an up projection (GeGLU).
 *
 * gelu_tanh(x) = 0.5·x·(1 + tanh(u)), u = sqrt(2/pi)·(x + 0.044715·x³), which equals
 * x / (1 + exp(-2u)) exactly; that form has no cancellation for negative x. exp is computed by
 * range reduction (y = k·ln2 + r, |r| ≤ ln2/2, ln2 split in two parts) and its degree-7
 * Taylor polynomial for exp(r) (truncation ~5e-9 relative; a few float ulps in all). The SIMD path (AVX2+FMA, also
 * used at the AVX-512 level) and the scalar path do the same fused operations in the same order,
 * so all levels give identical bits. */
#include <math.h>
#include "ck_internal.h"

#define GELU_C 0.7978845608028654f   /* sqrt(2/pi) */
#define GELU_A 0.044715f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693145751953125f        /* ln2 with the low 12 mantissa bits clear */
#define EXP_LN2_LO 1.42860682030941723212e-6f /* ln2 - EXP_LN2_HI */
/* exp(r) ≈ 1 + r + r²(P0 + r(P1 + r(P2 + r(P3 + r(P4 + r·P5))))), Taylor coefficients 1/n! */
#define EXP_P0 0.5f
#define EXP_P1 1.6666666666666666e-1f
#define EXP_P2 4.1666666666666664e-2f
#define EXP_P3 8.3333333333333332e-3f
#define EXP_P4 1.3888888888888889e-3f
#define EXP_P5 1.9841269841269841e-4f
/* clamp so 2^k stays a normal scale: k in [-124, 127] */
#define EXP_MAX 88.0f
#define EXP_MIN -86.0f

static inline float gelu_scalar(float x) {
    const float x2 = x * x;
    const float u = GELU_C * fmaf(GELU_A * x2, x, x);
    const float y0 = -2.0f * u;
    float y = y0 < EXP_MAX ? y0 : EXP_MAX;   /* the operand order of vminps / vmaxps */
    y = y > EXP_MIN ? y : EXP_MIN;
    const float k = rintf(y * EXP_LOG2E);
    float r = fmaf(-k, EXP_LN2_HI, y);
    r = fmaf(-k, EXP_LN2_LO, r);
    float p = fmaf(EXP_P5, r, EXP_P4);
    p = fmaf(p, r, EXP_P3);
    p = fmaf(p, r, EXP_P2);
    p = fmaf(p, r, EXP_P1);
    p = fmaf(p, r, EXP_P0);
    p = fmaf(p, r * r, r);
    p = p + 1.0f;
    uint32_t bits;
    memcpy(&bits, &p, 4);
    bits += (uint32_t)((int32_t)k << 23);
    float e;
    memcpy(&e, &bits, 4);
    /* beyond the clamp exp(-2u) > 1.6e38: the exact result is below |x|·6e-39, so 0 */
    return y0 < EXP_MAX ? x / (1.0f + e) : x * 0.0f;
}

static void geglu_scalar(const float *g, const float *u, float *out, long n) {
    for (long i = 0; i < n; i++) out[i] = gelu_scalar(g[i]) * u[i];
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AT __attribute__((target("avx2,fma")))

static AT void geglu_avx2(const float *g, const float *u, float *out, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 x2 = _mm256_mul_ps(x, x);
        const __m256 uu = _mm256_mul_ps(_mm256_set1_ps(GELU_C),
                                        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_A), x2), x, x));
        const __m256 y0 = _mm256_mul_ps(_mm256_set1_ps(-2.0f), uu);
        const __m256 inrange = _mm256_cmp_ps(y0, _mm256_set1_ps(EXP_MAX), _CMP_LT_OQ);
        __m256 y = _mm256_min_ps(y0, _mm256_set1_ps(EXP_MAX));
        y = _mm256_max_ps(y, _mm256_set1_ps(EXP_MIN));
        const __m256 k = _mm256_round_ps(_mm256_mul_ps(y, _mm256_set1_ps(EXP_LOG2E)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2_HI), y);
        r = _mm256_fnmadd_ps(k, _mm256_set1_ps(EXP_LN2_LO), r);
        __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(EXP_P5), r, _mm256_set1_ps(EXP_P4));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P0));
        p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
        p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
        const __m256i ki = _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23);
        const __m256 e = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), ki));
        const __m256 gl = _mm256_blendv_ps(_mm256_mul_ps(x, _mm256_setzero_ps()),
                                           _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), inrange);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(gl, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) out[i] = gelu_scalar(g[i]) * u[i];
}
#endif

void ck_geglu_tanh(int level, const float *g, const float *u, float *out, long n) {
    const int sup = ck_supported_level();
    if (level < 0) level = ck_default_level();
    if (level > sup) level = sup;
#if defined(__x86_64__)
    if (level >= 1) { geglu_avx2(g, u, out, n); return; }
#endif
    geglu_scalar(g, u, out, n);
}
