/* Activation kernels: GeGLU (GELU of a gate times an up projection). */
#include <math.h>
#include "ck_internal.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- GeGLU through a half-precision GELU table ---------------------------------------------
 * llama.cpp's CPU backend evaluates GELU this way (GGML_GELU_FP16, its default): x ≤ -10 gives 0,
 * x ≥ 10 gives x, otherwise x is rounded to half precision and looked up in a 65536-entry table
 * holding, for each half h, gelu(h) = 0.5·h·(1 + tanh(sqrt(2/pi)·h·(1 + 0.044715·h²))) computed in
 * float (the inner 1 + a·h·h as one fused multiply-add, as its compiler contracts it) and rounded
 * to half. Using the same rule keeps our GeGLU outputs identical to the reference engine's. */
#include <pthread.h>

static uint16_t g_gelu_table[65536];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_init(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float x = ck_h2f((uint16_t)h);
        const float inner = fmaf(0.044715f * x, x, 1.0f);
        const float t = tanhf(0.79788456080286535587989211986876f * x * inner);
        g_gelu_table[h] = ck_f2h(0.5f * x * (1.0f + t));
    }
}

static inline float gelu_table_scalar(float x) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    return ck_h2f(g_gelu_table[ck_f2h(x)]);
}

static void geglu_table_scalar(const float *g, const float *u, float *out, long n) {
    for (long i = 0; i < n; i++) out[i] = gelu_table_scalar(g[i]) * u[i];
}

#if defined(__x86_64__)
#define AT16 __attribute__((target("avx2,fma,f16c")))
static AT16 void geglu_table_avx2(const float *g, const float *u, float *out, long n) {
    long i = 0;
    uint16_t idx[8];
    uint16_t val[8];
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        _mm_storeu_si128((__m128i *)idx, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        for (int l = 0; l < 8; l++) val[l] = g_gelu_table[idx[l]];
        __m256 y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)val));
        y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(-10.0f), _CMP_LE_OQ));
        y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, _mm256_set1_ps(10.0f), _CMP_GE_OQ));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) out[i] = gelu_table_scalar(g[i]) * u[i];
}
#endif

void ck_geglu_table(int level, const float *g, const float *u, float *out, long n) {
    pthread_once(&g_gelu_once, gelu_table_init);
    level = ck_resolve_level(level);
#if defined(__x86_64__)
    if (level >= 1) { geglu_table_avx2(g, u, out, n); return; }
#endif
    geglu_table_scalar(g, u, out, n);
}
