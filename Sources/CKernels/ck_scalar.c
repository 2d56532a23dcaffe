/* Portable scalar kernels: the reference every SIMD level is tested against, and the
 * dequantizers (bit-exact with the published block layouts' float formulas). */
#include "ck_internal.h"

#pragma clang fp contract(off)

/* ---- dot products ----------------------------------------------------------------- */

static void dot_f32(long n, const void *w, const void *x, long xs, int nt, float *res) {
    const float *a = w;
    for (int t = 0; t < nt; t++) {
        const float *b = (const float *)((const char *)x + t * xs);
        float s = 0;
        for (long i = 0; i < n; i++) s += a[i] * b[i];
        res[t] = s;
    }
}

static void dot_f16(long n, const void *w, const void *x, long xs, int nt, float *res) {
    const uint16_t *a = w;
    for (int t = 0; t < nt; t++) {
        const float *b = (const float *)((const char *)x + t * xs);
        float s = 0;
        for (long i = 0; i < n; i++) s += ck_h2f(a[i]) * b[i];
        res[t] = s;
    }
}

static void dot_bf16(long n, const void *w, const void *x, long xs, int nt, float *res) {
    const uint16_t *a = w;
    for (int t = 0; t < nt; t++) {
        const float *b = (const float *)((const char *)x + t * xs);
        float s = 0;
        for (long i = 0; i < n; i++) s += ck_bf2f(a[i]) * b[i];
        res[t] = s;
    }
}

/* kind: 0 = Q8_0, 1 = Q4_0, 2 = Q5_0 */
static inline void dot_q32(long nb, const void *w, const void *x, long xs, int nt, float *res, int kind) {
    const long bs = kind == 0 ? 34 : kind == 1 ? 18 : 22;
    for (int t = 0; t < nt; t++) {
        const char *row = (const char *)x + t * xs;
        const float *yd = CK_QA32_D(row, nb);
        const int32_t *ysum = CK_QA32_SUM(row, nb);
        const int8_t *yq = CK_QA32_Q(row, nb);
        const uint8_t *p = w;
        float s = 0;
        for (long b = 0; b < nb; b++, p += bs, yq += 32) {
            int32_t si = 0;
            if (kind == 0) {
                const int8_t *q = (const int8_t *)(p + 2);
                for (int j = 0; j < 32; j++) si += q[j] * yq[j];
            } else if (kind == 1) {
                const uint8_t *q = p + 2;
                for (int j = 0; j < 16; j++) si += (q[j] & 0x0F) * yq[j] + (q[j] >> 4) * yq[j + 16];
                si -= 8 * ysum[b];
            } else {
                const uint32_t qh = ck_rd32(p + 2);
                const uint8_t *q = p + 6;
                for (int j = 0; j < 16; j++) {
                    int lo = (q[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
                    int hi = (q[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                    si += lo * yq[j] + hi * yq[j + 16];
                }
                si -= 16 * ysum[b];
            }
            s += ck_h2f(ck_rd16(p)) * yd[b] * (float)si;
        }
        res[t] = s;
    }
}
static void dot_q8_0(long nb, const void *w, const void *x, long xs, int nt, float *res) { dot_q32(nb, w, x, xs, nt, res, 0); }
static void dot_q4_0(long nb, const void *w, const void *x, long xs, int nt, float *res) { dot_q32(nb, w, x, xs, nt, res, 1); }
static void dot_q5_0(long nb, const void *w, const void *x, long xs, int nt, float *res) { dot_q32(nb, w, x, xs, nt, res, 2); }

/* Q4_K (has_high = 0) and Q5_K (has_high = 1): 8 sub-blocks of 32 with 6-bit scales/mins. */
static inline void dot_qk45(long nb, const void *w, const void *x, long xs, int nt, float *res, int five) {
    const long bs = five ? 176 : 144;
    for (int t = 0; t < nt; t++) {
        const ck_qa256 *y = (const ck_qa256 *)((const char *)x + t * xs);
        const uint8_t *p = w;
        float s = 0;
        for (long b = 0; b < nb; b++, p += bs) {
            const float d = ck_h2f(ck_rd16(p)), dmin = ck_h2f(ck_rd16(p + 2));
            const uint8_t *scales = p + 4, *qh = p + 16, *qs = p + (five ? 48 : 16);
            int32_t si = 0, mi = 0;
            for (int j = 0; j < 8; j++) {
                int sc, m;
                ck_scale_min_k4(scales, j, &sc, &m);
                const uint8_t *qq = qs + 32 * (j / 2);
                const int8_t *yq = y[b].q + 32 * j;
                int32_t sub = 0;
                for (int l = 0; l < 32; l++) {
                    int v = (j & 1) ? (qq[l] >> 4) : (qq[l] & 0x0F);
                    if (five) v |= ((qh[l] >> j) & 1) << 4;
                    sub += v * yq[l];
                }
                si += sc * sub;
                mi += m * (y[b].bsum[2 * j] + y[b].bsum[2 * j + 1]);
            }
            s += d * y[b].d * (float)si - dmin * y[b].d * (float)mi;
        }
        res[t] = s;
    }
}
static void dot_q4_K(long nb, const void *w, const void *x, long xs, int nt, float *res) { dot_qk45(nb, w, x, xs, nt, res, 0); }
static void dot_q5_K(long nb, const void *w, const void *x, long xs, int nt, float *res) { dot_qk45(nb, w, x, xs, nt, res, 1); }

static void dot_q6_K(long nb, const void *w, const void *x, long xs, int nt, float *res) {
    for (int t = 0; t < nt; t++) {
        const ck_qa256 *y = (const ck_qa256 *)((const char *)x + t * xs);
        const uint8_t *p = w;
        float s = 0;
        for (long b = 0; b < nb; b++, p += 210) {
            const int8_t *sc = (const int8_t *)(p + 192);
            int32_t si = 0;
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = p + 64 * h, *qh = p + 128 + 32 * h;
                const int8_t *yq = y[b].q + 128 * h;
                int32_t part[8] = {0};
                for (int l = 0; l < 32; l++) {
                    int q1 = (ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4;
                    int q2 = (ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4;
                    int q3 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                    int q4 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                    int g = l / 16;
                    part[g + 0] += q1 * yq[l];
                    part[g + 2] += q2 * yq[l + 32];
                    part[g + 4] += q3 * yq[l + 64];
                    part[g + 6] += q4 * yq[l + 96];
                }
                for (int k = 0; k < 8; k++) si += sc[8 * h + k] * part[k];
            }
            int32_t corr = 0;
            for (int k = 0; k < 16; k++) corr += sc[k] * y[b].bsum[k];
            si -= 32 * corr;
            s += ck_h2f(ck_rd16(p + 208)) * y[b].d * (float)si;
        }
        res[t] = s;
    }
}

void ck_fill_scalar(ck_dot_fn *table) {
    table[CK_TYPE_F32] = dot_f32;
    table[CK_TYPE_F16] = dot_f16;
    table[CK_TYPE_BF16] = dot_bf16;
    table[CK_TYPE_Q8_0] = dot_q8_0;
    table[CK_TYPE_Q4_0] = dot_q4_0;
    table[CK_TYPE_Q5_0] = dot_q5_0;
    table[CK_TYPE_Q4_K] = dot_q4_K;
    table[CK_TYPE_Q5_K] = dot_q5_K;
    table[CK_TYPE_Q6_K] = dot_q6_K;
}

/* ---- dequantization ---------------------------------------------------------------- */

void ck_dequantize(int type, const void *src, long count, float *y) {
    const uint8_t *p = src;
    switch (type) {
    case CK_TYPE_F32:
        memcpy(y, src, (size_t)count * 4);
        return;
    case CK_TYPE_F16:
        for (long i = 0; i < count; i++) y[i] = ck_h2f(ck_rd16(p + 2 * i));
        return;
    case CK_TYPE_BF16:
        for (long i = 0; i < count; i++) y[i] = ck_bf2f(ck_rd16(p + 2 * i));
        return;
    case CK_TYPE_Q8_0:
        for (long b = 0; b < count / 32; b++, p += 34, y += 32) {
            const float d = ck_h2f(ck_rd16(p));
            for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)p[2 + j];
        }
        return;
    case CK_TYPE_Q4_0:
        for (long b = 0; b < count / 32; b++, p += 18, y += 32) {
            const float d = ck_h2f(ck_rd16(p));
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)((p[2 + j] & 0x0F) - 8);
                y[j + 16] = d * (float)((p[2 + j] >> 4) - 8);
            }
        }
        return;
    case CK_TYPE_Q5_0:
        for (long b = 0; b < count / 32; b++, p += 22, y += 32) {
            const float d = ck_h2f(ck_rd16(p));
            const uint32_t qh = ck_rd32(p + 2);
            for (int j = 0; j < 16; j++) {
                int lo = (p[6 + j] & 0x0F) | (int)((qh >> j) & 1) << 4;
                int hi = (p[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                y[j] = d * (float)(lo - 16);
                y[j + 16] = d * (float)(hi - 16);
            }
        }
        return;
    case CK_TYPE_Q4_K:
    case CK_TYPE_Q5_K: {
        const int five = type == CK_TYPE_Q5_K;
        const long bs = five ? 176 : 144;
        for (long b = 0; b < count / 256; b++, p += bs, y += 256) {
            const float d = ck_h2f(ck_rd16(p)), dmin = ck_h2f(ck_rd16(p + 2));
            const uint8_t *qh = p + 16, *qs = p + (five ? 48 : 16);
            for (int j = 0; j < 8; j++) {
                int sc, m;
                ck_scale_min_k4(p + 4, j, &sc, &m);
                const float ds = d * (float)sc, dm = dmin * (float)m;
                const uint8_t *qq = qs + 32 * (j / 2);
                for (int l = 0; l < 32; l++) {
                    int v = (j & 1) ? (qq[l] >> 4) : (qq[l] & 0x0F);
                    if (five) v |= ((qh[l] >> j) & 1) << 4;
                    float prod = ds * (float)v;
                    y[32 * j + l] = prod - dm;
                }
            }
        }
        return;
    }
    case CK_TYPE_Q6_K:
        for (long b = 0; b < count / 256; b++, p += 210, y += 256) {
            const float d = ck_h2f(ck_rd16(p + 208));
            const int8_t *sc = (const int8_t *)(p + 192);
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = p + 64 * h, *qh = p + 128 + 32 * h;
                float *yy = y + 128 * h;
                for (int l = 0; l < 32; l++) {
                    int q1 = ((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
                    int q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
                    int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                    int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                    int g = 8 * h + l / 16;
                    yy[l] = (d * (float)sc[g + 0]) * (float)q1;
                    yy[l + 32] = (d * (float)sc[g + 2]) * (float)q2;
                    yy[l + 64] = (d * (float)sc[g + 4]) * (float)q3;
                    yy[l + 96] = (d * (float)sc[g + 6]) * (float)q4;
                }
            }
        }
        return;
    default:
        return;
    }
}
