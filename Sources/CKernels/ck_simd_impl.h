/* x86 SIMD kernels, compiled once per level. The including file defines:
 *   CK_TARGET  function attribute enabling the level's instruction sets
 *   CK_FN(n)   level-specific name
 *   CK_VNNI    1 to use AVX-512 VNNI dot products (vpdpbusd on 256-bit vectors)
 * All integer work is exact; only the float accumulation order differs from the scalar
 * path. Weight quants are unpacked once per block and reused for up to CK_TILE activation rows. */
#include <immintrin.h>
#include "ck_internal.h"

#define INL static inline __attribute__((always_inline)) CK_TARGET

INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INL float h2f(const uint8_t *p) { return _cvtsh_ss(ck_rd16(p)); }

INL __m256i ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Sum of the eight int32 lanes (exact). */
INL int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* Adds x to lane 0 of an int32x8 vector. */
INL __m256i add_lane0(__m256i v, int x) {
    return _mm256_add_epi32(v, _mm256_zextsi128_si256(_mm_cvtsi32_si128(x)));
}

/* Pairwise-summed u8*s8 products as int32x8 (sum over all lanes = full dot). */
INL __m256i dot_us(__m256i a, __m256i b) {
#if CK_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
#endif
}

/* Scale vector: bytes 0..15 of a dot get scale lo, bytes 16..31 get scale hi (int16 lanes). */
INL __m256i mkscale(int lo, int hi) { return _mm256_setr_m128i(_mm_set1_epi16((short)lo), _mm_set1_epi16((short)hi)); }
/* acc + scaled u8*s8 dot: vpmaddubsw gives exact int16 pair sums (weights ≤ 63, |activations|
 * ≤ 127, so |pair| ≤ 16002), then one scaled pairwise int16 step into int32: VNNI's vpdpwssd does
 * the multiply-add and the accumulation in one instruction (AVX2: vpmaddwd + vpaddd). */
INL __m256i dot_acc_scaled(__m256i acc, __m256i a, __m256i b, __m256i sv) {
#if CK_VNNI
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(a, b), sv);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), sv));
#endif
}

/* 32 bits -> 32 bytes, byte i = 0xFF when bit i is set. */
INL __m256i expand_bits32(uint32_t bits) {
    __m256i v = _mm256_set1_epi32((int)bits);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                           0x0101010101010101LL, 0x0000000000000000LL);
    v = _mm256_shuffle_epi8(v, shuf);
    const __m256i bitm = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bitm), bitm);
}

#define ACTIVATION(T, t, b) ((const T *)(x + (t) * xs) + (b))

/* Calls the always-inline body with a constant token count so its loops unroll. */
#define NT_DISPATCH(name, body)                                                              \
    static CK_TARGET void CK_FN(name)(long nb, const void *w, const void *x, long xs, int nt, \
                                      float *res) {                                          \
        switch (nt) {                                                                        \
        case 1: body(nb, w, (const char *)x, xs, 1, res); break;                             \
        case 2: body(nb, w, (const char *)x, xs, 2, res); break;                             \
        case 3: body(nb, w, (const char *)x, xs, 3, res); break;                             \
        case 4: body(nb, w, (const char *)x, xs, 4, res); break;                             \
        case 5: body(nb, w, (const char *)x, xs, 5, res); break;                             \
        case 6: body(nb, w, (const char *)x, xs, 6, res); break;                             \
        case 7: body(nb, w, (const char *)x, xs, 7, res); break;                             \
        default: body(nb, w, (const char *)x, xs, CK_TILE, res); break;                      \
        }                                                                                    \
    }

/* ---- float weights ------------------------------------------------------------------ */

INL __m256 load8w(const void *w, long i, int kind) {
    if (kind == 0) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (kind == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
INL float load1w(const void *w, long i, int kind) {
    if (kind == 0) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    return kind == 1 ? _cvtsh_ss(h) : ck_bf2f(h);
}
INL void fdot(long n, const void *w, const char *x, long xs, const int nt, float *res, const int kind) {
    __m256 a0[CK_TILE], a1[CK_TILE];
    for (int t = 0; t < nt; t++) a0[t] = a1[t] = _mm256_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = load8w(w, i, kind), w1 = load8w(w, i + 8, kind);
        for (int t = 0; t < nt; t++) {
            const float *xt = (const float *)(x + t * xs) + i;
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), a0[t]);
            a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), a1[t]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 w0 = load8w(w, i, kind);
        for (int t = 0; t < nt; t++)
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps((const float *)(x + t * xs) + i), a0[t]);
    }
    for (int t = 0; t < nt; t++) {
        float s = hsum8(_mm256_add_ps(a0[t], a1[t]));
        const float *xt = (const float *)(x + t * xs);
        for (long j = i; j < n; j++) s += load1w(w, j, kind) * xt[j];
        res[t] = s;
    }
}
INL void f32_body(long n, const void *w, const char *x, long xs, const int nt, float *res) { fdot(n, w, x, xs, nt, res, 0); }
INL void f16_body(long n, const void *w, const char *x, long xs, const int nt, float *res) { fdot(n, w, x, xs, nt, res, 1); }
INL void bf16_body(long n, const void *w, const char *x, long xs, const int nt, float *res) { fdot(n, w, x, xs, nt, res, 2); }
NT_DISPATCH(dot_f32, f32_body)
NT_DISPATCH(dot_f16, f16_body)
NT_DISPATCH(dot_bf16, bf16_body)

/* ---- 32-element blocks ------------------------------------------------------------- */

/* Q5_0: sets bit 4 of byte i of q when bit i of qh is set. */
INL __m256i apply_high_bits(__m256i q, uint32_t qh) {
#if CK_VNNI
    return _mm256_mask_add_epi8(q, (__mmask32)qh, q, _mm256_set1_epi8(0x10));
#else
    return _mm256_or_si256(q, _mm256_and_si256(expand_bits32(qh), _mm256_set1_epi8(0x10)));
#endif
}

/* kind: 0 = Q8_0 (signed quants), 1 = Q4_0, 2 = Q5_0 (unsigned quants; the -8/-16 offset is
 * applied exactly in integers through the activation block sums). */
#define Q32_BS(kind) ((kind) == 0 ? 34 : (kind) == 1 ? 18 : 22)

/* Unpacks block w into the u8 operand (a) and, for Q8_0, the sign source (sg). */
INL void q32_unpack(const uint8_t *w, const int kind, __m256i *a, __m256i *sg) {
    if (kind == 0) {
        const __m256i wq = ld(w + 2);
        *a = _mm256_abs_epi8(wq);
        *sg = wq;
    } else {
        const __m128i raw = _mm_loadu_si128((const __m128i *)(w + (kind == 2 ? 6 : 2)));
        __m256i q = _mm256_and_si256(_mm256_setr_m128i(raw, _mm_srli_epi16(raw, 4)), _mm256_set1_epi8(0x0F));
        if (kind == 2) q = apply_high_bits(q, ck_rd32(w + 2));
        *a = q;
        *sg = q;
    }
}

INL __m256i q32_dot(__m256i a, __m256i sg, const int8_t *yq, const int kind) {
    const __m256i y = ld(yq);
    return dot_us(a, kind == 0 ? _mm256_sign_epi8(y, sg) : y);
}

/* Four blocks per step: the four int32x8 partial sums are reduced together into one
 * vector of four block sums, scaled by four (weight scale × activation scale) at once. */
INL void q32_body(long nb, const void *wv, const char *x, long xs, const int nt, float *res, const int kind) {
    const uint8_t *w = wv;
    const long bs = Q32_BS(kind);
    const int shift = kind == 1 ? 3 : 4;
    __m128 acc[CK_TILE];
    float tail[CK_TILE];
    for (int t = 0; t < nt; t++) { acc[t] = _mm_setzero_ps(); tail[t] = 0; }
    long b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * bs) {
        __m256i h01[CK_TILE], h23[CK_TILE];
        {
            __m256i a0, s0, a1, s1;
            q32_unpack(w, kind, &a0, &s0);
            q32_unpack(w + bs, kind, &a1, &s1);
            for (int t = 0; t < nt; t++) {
                const int8_t *yq = CK_QA32_Q(x + t * xs, nb) + 32 * b;
                h01[t] = _mm256_hadd_epi32(q32_dot(a0, s0, yq, kind), q32_dot(a1, s1, yq + 32, kind));
            }
        }
        {
            __m256i a2, s2, a3, s3;
            q32_unpack(w + 2 * bs, kind, &a2, &s2);
            q32_unpack(w + 3 * bs, kind, &a3, &s3);
            for (int t = 0; t < nt; t++) {
                const int8_t *yq = CK_QA32_Q(x + t * xs, nb) + 32 * b;
                h23[t] = _mm256_hadd_epi32(q32_dot(a2, s2, yq + 64, kind), q32_dot(a3, s3, yq + 96, kind));
            }
        }
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)ck_rd16(w), (short)ck_rd16(w + bs),
                                                      (short)ck_rd16(w + 2 * bs), (short)ck_rd16(w + 3 * bs), 0, 0, 0, 0));
        for (int t = 0; t < nt; t++) {
            const char *row = x + t * xs;
            const __m256i h = _mm256_hadd_epi32(h01[t], h23[t]);
            __m128i v = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            if (kind != 0) v = _mm_sub_epi32(v, _mm_slli_epi32(_mm_loadu_si128((const __m128i *)(CK_QA32_SUM(row, nb) + b)), shift));
            const __m128 sc = _mm_mul_ps(dw, _mm_loadu_ps(CK_QA32_D(row, nb) + b));
            acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(v), sc, acc[t]);
        }
    }
    for (; b < nb; b++, w += bs) {
        __m256i a, sg;
        q32_unpack(w, kind, &a, &sg);
        const float dw = h2f(w);
        for (int t = 0; t < nt; t++) {
            const char *row = x + t * xs;
            const __m256i p = q32_dot(a, sg, CK_QA32_Q(row, nb) + 32 * b, kind);
            __m128i v = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            v = _mm_hadd_epi32(v, v);
            v = _mm_hadd_epi32(v, v);
            int si = _mm_cvtsi128_si32(v);
            if (kind != 0) si -= CK_QA32_SUM(row, nb)[b] << shift;
            tail[t] += dw * CK_QA32_D(row, nb)[b] * (float)si;
        }
    }
    for (int t = 0; t < nt; t++) {
        __m128 s = _mm_add_ps(acc[t], _mm_movehl_ps(acc[t], acc[t]));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        res[t] = _mm_cvtss_f32(s) + tail[t];
    }
}
INL void q8_0_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { q32_body(nb, w, x, xs, nt, res, 0); }
INL void q4_0_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { q32_body(nb, w, x, xs, nt, res, 1); }
INL void q5_0_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { q32_body(nb, w, x, xs, nt, res, 2); }
NT_DISPATCH(dot_q8_0, q8_0_body)
NT_DISPATCH(dot_q4_0, q4_0_body)
NT_DISPATCH(dot_q5_0, q5_0_body)

/* ---- 256-element K-quant blocks ------------------------------------------------------ */

INL void qk45_body(long nb, const void *wv, const char *x, long xs, const int nt, float *res, const int five) {
    const uint8_t *w = wv;
    const long bs = five ? 176 : 144;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    __m256 acc[CK_TILE];
    float accm[CK_TILE];
    for (int t = 0; t < nt; t++) { acc[t] = _mm256_setzero_ps(); accm[t] = 0; }
    for (long b = 0; b < nb; b++, w += bs) {
        const float d = h2f(w), dmin = h2f(w + 2);
        int sc[8], m[8];
        for (int j = 0; j < 8; j++) ck_scale_min_k4(w + 4, j, &sc[j], &m[j]);
        const uint8_t *qs = w + (five ? 48 : 16);
        const __m256i qh = five ? ld(w + 16) : _mm256_setzero_si256();
        __m256i q[8], sv[8];
        /* mins as int16 pairs (m0,m0,m1,m1,…): one vpmaddwd with the 16 activation sums gives
         * m[j]·(bsum[2j] + bsum[2j+1]) per lane */
        const __m128i m8 = _mm_setr_epi16((short)m[0], (short)m[1], (short)m[2], (short)m[3],
                                          (short)m[4], (short)m[5], (short)m[6], (short)m[7]);
        const __m256i m16 = _mm256_setr_m128i(_mm_unpacklo_epi16(m8, m8), _mm_unpackhi_epi16(m8, m8));
        for (int c = 0; c < 4; c++) {
            const __m256i raw = ld(qs + 32 * c);
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (five) {
                const __m256i bl = _mm256_set1_epi8((char)(1 << (2 * c))), bh = _mm256_set1_epi8((char)(1 << (2 * c + 1)));
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), b4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), b4));
            }
            q[2 * c] = lo;
            q[2 * c + 1] = hi;
            sv[2 * c] = mkscale(sc[2 * c], sc[2 * c]);
            sv[2 * c + 1] = mkscale(sc[2 * c + 1], sc[2 * c + 1]);
        }
        for (int t = 0; t < nt; t++) {
            const ck_qa256 *y = ACTIVATION(ck_qa256, t, b);
            __m256i s = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) s = dot_acc_scaled(s, q[j], ld(y->q + 32 * j), sv[j]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * y->d), acc[t]);
            const int mi = hsum_epi32(_mm256_madd_epi16(ld(y->bsum), m16));
            accm[t] += dmin * y->d * (float)mi;
        }
    }
    for (int t = 0; t < nt; t++) res[t] = hsum8(acc[t]) - accm[t];
}
INL void q4_K_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { qk45_body(nb, w, x, xs, nt, res, 0); }
INL void q5_K_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { qk45_body(nb, w, x, xs, nt, res, 1); }
NT_DISPATCH(dot_q4_K, q4_K_body)
NT_DISPATCH(dot_q5_K, q5_K_body)

INL void q6_K_body(long nb, const void *wv, const char *x, long xs, const int nt, float *res) {
    const uint8_t *w = wv;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i c03 = _mm256_set1_epi8(0x03), c0c = _mm256_set1_epi8(0x0C);
    const __m256i c30 = _mm256_set1_epi8(0x30), cc0 = _mm256_set1_epi8((char)0xC0);
    __m256 acc[CK_TILE];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (long b = 0; b < nb; b++, w += 210) {
        const float d = h2f(w + 208);
        const int8_t *sc = (const int8_t *)(w + 192);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i q[8], sv[8];
        for (int h = 0; h < 2; h++) {
            const __m256i a = ld(w + 64 * h), c = ld(w + 64 * h + 32), hq = ld(w + 128 + 32 * h);
            q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(_mm256_and_si256(hq, c03), 4));
            q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_slli_epi16(_mm256_and_si256(hq, c0c), 2));
            q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), _mm256_and_si256(hq, c30));
            q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4),
                                           _mm256_srli_epi16(_mm256_and_si256(hq, cc0), 2));
            for (int k = 0; k < 4; k++) sv[4 * h + k] = mkscale(sc[8 * h + 2 * k], sc[8 * h + 2 * k + 1]);
        }
        for (int t = 0; t < nt; t++) {
            const ck_qa256 *y = ACTIVATION(ck_qa256, t, b);
            __m256i s = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) s = dot_acc_scaled(s, q[j], ld(y->q + 32 * j), sv[j]);
            const int corr = hsum_epi32(_mm256_madd_epi16(ld(y->bsum), sc16));
            s = add_lane0(s, -32 * corr);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * y->d), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) res[t] = hsum8(acc[t]);
}
NT_DISPATCH(dot_q6_K, q6_K_body)

void CK_FN(ck_fill)(ck_dot_fn *table) {
    table[CK_TYPE_F32] = CK_FN(dot_f32);
    table[CK_TYPE_F16] = CK_FN(dot_f16);
    table[CK_TYPE_BF16] = CK_FN(dot_bf16);
    table[CK_TYPE_Q8_0] = CK_FN(dot_q8_0);
    table[CK_TYPE_Q4_0] = CK_FN(dot_q4_0);
    table[CK_TYPE_Q5_0] = CK_FN(dot_q5_0);
    table[CK_TYPE_Q4_K] = CK_FN(dot_q4_K);
    table[CK_TYPE_Q5_K] = CK_FN(dot_q5_K);
    table[CK_TYPE_Q6_K] = CK_FN(dot_q6_K);
}

/* ---- packed 8-row groups (layout: ck_pack.c) ------------------------------------------ */

/* kind: 0 = Q8_0, 1 = Q4_0, 2 = Q5_0. Per group-block the eight quant vectors are unpacked once
 * and used for every token of the tile; for each token, lane r of one int32 vector accumulates row
 * r's exact block sum (four products per instruction), then one multiply-add by the eight rows'
 * scales times the token's block scale. Unsigned quants (Q4_0/Q5_0, and Q8_0 + 128 under VNNI)
 * are offset exactly in integers through the activation block sums. */
INL void p32_body(long nb, const void *pw, const char *x, long xs, const int nt, float *res, const int kind) {
    const uint8_t *w = pw;
    const long gb = kind == 0 ? 272 : kind == 1 ? 144 : 176;
    /* offset subtracted per activation-block sum: 128 (Q8_0 as u8 under VNNI), 8 (Q4_0), 16 (Q5_0) */
    const int shift = kind == 0 ? 7 : kind == 1 ? 3 : 4;
    const int offset = kind != 0 || CK_VNNI;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[CK_TILE];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (long b = 0; b < nb; b++, w += gb) {
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        __m256i q[8];
#if !CK_VNNI
        __m256i qa[8]; /* |q| for the AVX2 sign trick (Q8_0) */
#endif
        if (kind == 0) {
            for (int k = 0; k < 8; k++) {
                const __m256i v = ld(w + 16 + 32 * k);
#if CK_VNNI
                q[k] = _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
#else
                q[k] = v;
                qa[k] = _mm256_abs_epi8(v);
#endif
            }
        } else {
            for (int j = 0; j < 4; j++) {
                const __m256i raw = ld(w + 16 + 32 * j);
                q[j] = _mm256_and_si256(raw, m4);
                q[j + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            }
            if (kind == 2) {
                const __m256i h = ld(w + 144);
                for (int k = 0; k < 8; k++) {
#if CK_VNNI
                    const __mmask32 m = _mm256_test_epi8_mask(h, _mm256_set1_epi8((char)(1 << k)));
                    q[k] = _mm256_mask_add_epi8(q[k], m, q[k], _mm256_set1_epi8(0x10));
#else
                    const __m256i bit = _mm256_set1_epi8((char)(1 << k));
                    q[k] = _mm256_or_si256(q[k], _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit),
                                                                  _mm256_set1_epi8(0x10)));
#endif
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            const char *row = x + t * xs;
            const uint8_t *yq = (const uint8_t *)(CK_QA32_Q(row, nb) + 32 * b);
            __m256i s = offset ? _mm256_set1_epi32(-(CK_QA32_SUM(row, nb)[b] << shift)) : _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                const __m256i y = _mm256_set1_epi32((int)ck_rd32(yq + 4 * k));
#if CK_VNNI
                s = _mm256_dpbusd_epi32(s, q[k], y);
#else
                if (kind == 0)
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(qa[k], _mm256_sign_epi8(y, q[k])),
                                                              _mm256_set1_epi16(1)));
                else
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], y), _mm256_set1_epi16(1)));
#endif
            }
            const __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(CK_QA32_D(row, nb)[b]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(res + 8 * t, acc[t]);
}
INL void p8_0_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { p32_body(nb, w, x, xs, nt, res, 0); }
INL void p4_0_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { p32_body(nb, w, x, xs, nt, res, 1); }
INL void p5_0_body(long nb, const void *w, const char *x, long xs, const int nt, float *res) { p32_body(nb, w, x, xs, nt, res, 2); }
NT_DISPATCH(pdot_q8_0, p8_0_body)
NT_DISPATCH(pdot_q4_0, p4_0_body)
NT_DISPATCH(pdot_q5_0, p5_0_body)

void CK_FN(ck_pfill)(ck_pdot_fn *table) {
    table[CK_TYPE_Q8_0] = CK_FN(pdot_q8_0);
    table[CK_TYPE_Q4_0] = CK_FN(pdot_q4_0);
    table[CK_TYPE_Q5_0] = CK_FN(pdot_q5_0);
}

/* ---- activation quantization (same bytes as ck_quant_*_scalar) ------------------------ */

/* Largest |x| of 8·k floats (k vectors), as the scalar fmaxf loop computes it for finite input. */
INL float absmax(const float *x, int k) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < k; i++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* round-half-even(x·id) clamped to ±127, for 8 floats (the default MXCSR rounding is the
 * nearbyintf rounding). */
INL __m256i quant8(const float *x, __m256 id) {
    const __m256i v = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), id),
                                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
}

/* Packs four int32x8 (values in ±127) into 32 int8 in order. */
INL __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i p = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

INL int hsum_i32(__m256i v) { return hsum_epi32(v); }

CK_TARGET void CK_FN(ck_quant_qa32)(const float *x, char *row, long nb) {
    float *yd = (float *)row;
    int32_t *ysum = (int32_t *)(row + 4 * nb);
    int8_t *yq = (int8_t *)(row + 8 * nb);
    for (long b = 0; b < nb; b++, x += 32, yq += 32) {
        const float amax = absmax(x, 4);
        const float id = amax != 0 ? 127.0f / amax : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        const __m256i a = quant8(x, idv), bq = quant8(x + 8, idv), c = quant8(x + 16, idv), d = quant8(x + 24, idv);
        _mm256_storeu_si256((__m256i *)yq, pack32(a, bq, c, d));
        ysum[b] = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(a, bq), _mm256_add_epi32(c, d)));
        yd[b] = ck_round_half(amax / 127.0f);
    }
}

CK_TARGET void CK_FN(ck_quant_qa256)(const float *x, ck_qa256 *y, long nb) {
    for (long b = 0; b < nb; b++, x += 256) {
        const float amax = absmax(x, 32);
        const float id = amax != 0 ? 127.0f / amax : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        for (int g = 0; g < 8; g++) {
            const float *xg = x + 32 * g;
            const __m256i a = quant8(xg, idv), bq = quant8(xg + 8, idv), c = quant8(xg + 16, idv), d = quant8(xg + 24, idv);
            _mm256_storeu_si256((__m256i *)(y[b].q + 32 * g), pack32(a, bq, c, d));
            y[b].bsum[2 * g] = (int16_t)hsum_i32(_mm256_add_epi32(a, bq));
            y[b].bsum[2 * g + 1] = (int16_t)hsum_i32(_mm256_add_epi32(c, d));
        }
        y[b].d = amax != 0 ? 1.0f / id : 0.0f;
    }
}
