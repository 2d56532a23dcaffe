/* Half-precision KV cache helpers: F32 -> F16 conversion and the two attention products
 * over F16 keys/values (scores q·k for a run of positions; weighted sum of value rows).
 * SIMD (AVX2+FMA+F16C, and the same code under the AVX-512 level) with runtime dispatch and a
 * portable scalar path. Every level computes the same operations in the same order, so all
 * levels agree bit for bit: products and sums rounded separately (no fused multiply-add),
 * scores accumulated in 16 striped lanes, folded lane l with lane l+8, then summed lanes 0..7
 * in order; the weighted sum adds w[j]·v[j] to each output lane for j = 0, 1, … in order.
 * (These are the operations of the engine's float attention path, so an F16 cache gives the
 * same numbers as F32 storage of the same half-rounded values.) Products are written as
 * separate statements so that no compiler contracts them into FMAs. */
#include <math.h>
#include "ck_internal.h"

/* ---- scalar ------------------------------------------------------------------------ */

static void f32_to_f16_scalar(const float *x, uint16_t *y, long n) {
    for (long i = 0; i < n; i++) y[i] = ck_f2h(x[i]);
}

/* The fixed reduction of 16 lane sums: v[l] = a[l] + a[l+8], then v[0] + v[1] + … + v[7] in order. */
static inline float reduce16(const float *a) {
    float s = a[0] + a[8];
    for (int l = 1; l < 8; l++) {
        const float v = a[l] + a[l + 8];
        s = s + v;
    }
    return s;
}

static void scores_f16_scalar(const float *q, const uint16_t *k, long ks, long n, long dim, float *out) {
    const long d16 = dim & ~15L;
    for (long j = 0; j < n; j++, k += ks) {
        float acc[16] = {0};
        for (long i = 0; i < d16; i += 16)
            for (int l = 0; l < 16; l++) {
                const float p = q[i + l] * ck_h2f(k[i + l]);
                acc[l] = acc[l] + p;
            }
        float s = reduce16(acc);
        for (long i = d16; i < dim; i++) {
            const float p = q[i] * ck_h2f(k[i]);
            s = s + p;
        }
        out[j] = s;
    }
}

static void accum_f16_scalar(const float *w, const uint16_t *v, long vs, long n, long dim, float *out) {
    for (long j = 0; j < n; j++, v += vs)
        for (long i = 0; i < dim; i++) {
            const float p = w[j] * ck_h2f(v[i]);
            out[i] = out[i] + p;
        }
}

/* ---- AVX2 + FMA + F16C ------------------------------------------------------------------- */
#if defined(__x86_64__)
#include <immintrin.h>
#define HT __attribute__((target("avx2,fma,f16c")))

static HT void f32_to_f16_avx2(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = ck_f2h(x[i]);
}

static inline __attribute__((always_inline)) HT __m256 ldh(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __attribute__((always_inline)) HT float reduce2x8(__m256 a0, __m256 a1) {
    float v[8];
    _mm256_storeu_ps(v, _mm256_add_ps(a0, a1)); /* lane l + lane l+8 */
    float s = v[0];
    for (int l = 1; l < 8; l++) s = s + v[l];
    return s;
}

/* acc + a·b with the product rounded first (vmulps, vaddps). */
#define MULADD(a, b, acc) _mm256_add_ps((acc), _mm256_mul_ps((a), (b)))

static HT void scores_f16_avx2(const float *q, const uint16_t *k, long ks, long n, long dim, float *out) {
    const long d16 = dim & ~15L;
    long j = 0;
    for (; j + 2 <= n; j += 2, k += 2 * ks) { /* two positions share each load of q */
        const uint16_t *k1 = k + ks;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        for (long i = 0; i < d16; i += 16) {
            const __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
            a0 = MULADD(q0, ldh(k + i), a0);
            a1 = MULADD(q1, ldh(k + i + 8), a1);
            b0 = MULADD(q0, ldh(k1 + i), b0);
            b1 = MULADD(q1, ldh(k1 + i + 8), b1);
        }
        float s = reduce2x8(a0, a1), t = reduce2x8(b0, b1);
        for (long i = d16; i < dim; i++) {
            const float p = q[i] * _cvtsh_ss(k[i]), p1 = q[i] * _cvtsh_ss(k1[i]);
            s = s + p;
            t = t + p1;
        }
        out[j] = s;
        out[j + 1] = t;
    }
    for (; j < n; j++, k += ks) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (long i = 0; i < d16; i += 16) {
            a0 = MULADD(_mm256_loadu_ps(q + i), ldh(k + i), a0);
            a1 = MULADD(_mm256_loadu_ps(q + i + 8), ldh(k + i + 8), a1);
        }
        float s = reduce2x8(a0, a1);
        for (long i = d16; i < dim; i++) {
            const float p = q[i] * _cvtsh_ss(k[i]);
            s = s + p;
        }
        out[j] = s;
    }
}

/* Output lanes are kept in registers, 32 at a time, while all n value rows stream past. */
static HT void accum_f16_avx2(const float *w, const uint16_t *v, long vs, long n, long dim, float *out) {
    long i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256 o0 = _mm256_loadu_ps(out + i), o1 = _mm256_loadu_ps(out + i + 8);
        __m256 o2 = _mm256_loadu_ps(out + i + 16), o3 = _mm256_loadu_ps(out + i + 24);
        const uint16_t *vp = v + i;
        for (long j = 0; j < n; j++, vp += vs) {
            const __m256 wj = _mm256_broadcast_ss(w + j);
            o0 = MULADD(wj, ldh(vp), o0);
            o1 = MULADD(wj, ldh(vp + 8), o1);
            o2 = MULADD(wj, ldh(vp + 16), o2);
            o3 = MULADD(wj, ldh(vp + 24), o3);
        }
        _mm256_storeu_ps(out + i, o0);
        _mm256_storeu_ps(out + i + 8, o1);
        _mm256_storeu_ps(out + i + 16, o2);
        _mm256_storeu_ps(out + i + 24, o3);
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 o0 = _mm256_loadu_ps(out + i);
        const uint16_t *vp = v + i;
        for (long j = 0; j < n; j++, vp += vs) o0 = MULADD(_mm256_broadcast_ss(w + j), ldh(vp), o0);
        _mm256_storeu_ps(out + i, o0);
    }
    for (; i < dim; i++) {
        float o = out[i];
        for (long j = 0; j < n; j++) {
            const float p = w[j] * _cvtsh_ss(v[j * vs + i]);
            o = o + p;
        }
        out[i] = o;
    }
}
#endif

/* ---- dispatch ------------------------------------------------------------------------------ */


void ck_f32_to_f16(int level, const float *x, uint16_t *y, long n) {
#if defined(__x86_64__)
    if (ck_resolve_level(level) >= 1) { f32_to_f16_avx2(x, y, n); return; }
#endif
    f32_to_f16_scalar(x, y, n);
}

void ck_attn_scores_f16(int level, const float *q, const uint16_t *k, long kstride, long n, long dim, float *out) {
#if defined(__x86_64__)
    if (ck_resolve_level(level) >= 1) { scores_f16_avx2(q, k, kstride, n, dim, out); return; }
#endif
    scores_f16_scalar(q, k, kstride, n, dim, out);
}

void ck_attn_accum_f16(int level, const float *w, const uint16_t *v, long vstride, long n, long dim, float *out) {
#if defined(__x86_64__)
    if (ck_resolve_level(level) >= 1) { accum_f16_avx2(w, v, vstride, n, dim, out); return; }
#endif
    accum_f16_scalar(w, v, vstride, n, dim, out);
}
