/* Internal declarations shared by the CKernels translation units. */
#ifndef CK_INTERNAL_H
#define CK_INTERNAL_H
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "ckernels.h"

/* Activations for 32-element weight blocks are stored per row as three arrays so that
 * the scales of consecutive blocks load as one vector:
 *   float d[nb]; int32_t sum[nb]; int8_t q[nb][32]     (40 bytes per block) */
#define CK_QA32_BYTES 40
#define CK_QA32_D(row, nb) ((const float *)(row))
#define CK_QA32_SUM(row, nb) ((const int32_t *)((const char *)(row) + 4 * (nb)))
#define CK_QA32_Q(row, nb) ((const int8_t *)((const char *)(row) + 8 * (nb)))
/* Activation block for 256-element weight blocks: scale, quants, sums of each 16. */
typedef struct { float d; int8_t q[256]; int16_t bsum[16]; } ck_qa256;

_Static_assert(sizeof(ck_qa256) == 292, "ck_qa256 layout");

/* Activation rows (tokens) per pass over a weight row: the weights are unpacked once per
 * block and used for this many tokens, whose quantized blocks stay in L1. */
#define CK_TILE 8

/* Dot products of one weight row with nt (1..CK_TILE) activation rows.
 * nb: blocks in the row (elements for float types); x: first activation row (quantized
 * blocks, or floats for F32/F16/BF16); xstride: bytes between activation rows. */
typedef void (*ck_dot_fn)(long nb, const void *w, const void *x, long xstride, int nt, float *res);

enum { CK_NTYPES = 31 };

static inline float ck_h2f(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        memcpy(&bits, &f, 4);
        bits |= s;
    } else if (e == 31) {
        bits = s | 0x7f800000u | (m << 13);
    } else {
        bits = s | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float ck_bf2f(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t ck_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t ck_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Q4_K / Q5_K 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes. */
static inline void ck_scale_min_k4(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* The float nearest to f in half precision (round to nearest, ties to even), including
 * subnormal halves, overflow to infinity and NaN. */
static inline float ck_round_half(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    const uint32_t sign = b & 0x80000000u, a = b & 0x7fffffffu;
    uint32_t r;
    if (a >= 0x7f800000u) {
        r = b; /* inf / NaN */
    } else if (a >= 0x477ff000u) {
        r = sign | 0x7f800000u; /* rounds past the largest half (65504) */
    } else if (a >= 0x38800000u) {
        /* normal half: keep 10 mantissa bits */
        r = sign | ((a + 0x0fffu + ((a >> 13) & 1u)) & ~0x1fffu);
    } else {
        /* subnormal half (or zero): a multiple of 2^-24, rounded half to even */
        float m = fabsf(f) * 16777216.0f; /* exact: scaling by a power of two */
        m = nearbyintf(m) * (1.0f / 16777216.0f);
        memcpy(&r, &m, 4);
        r |= sign;
    }
    float out;
    memcpy(&out, &r, 4);
    return out;
}

/* IEEE half bits of f, rounded to nearest, ties to even (subnormals, overflow to infinity, NaN quieted). */
static inline uint16_t ck_f2h(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    const uint16_t s = (uint16_t)((b >> 16) & 0x8000u);
    const uint32_t a = b & 0x7fffffffu;
    if (a > 0x7f800000u) return s | 0x7e00u | (uint16_t)((a >> 13) & 0x3ffu); /* NaN, quieted */
    if (a >= 0x477ff000u) return s | 0x7c00u;     /* ≥ 65520 rounds to infinity */
    if (a >= 0x38800000u) {                       /* normal half: round mantissa to 10 bits, ties to even */
        const uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
        return s | (uint16_t)((r - 0x38000000u) >> 13);
    }
    float fa;
    memcpy(&fa, &a, 4);
    /* subnormal half: multiples of 2^-24 (the scaling is exact; rint rounds ties to even;
     * 1024 encodes the smallest normal) */
    return s | (uint16_t)rintf(fa * 16777216.0f);
}

/* Activation quantizers (llama.cpp's q8_0 / q8_K rules, see ck_core.c): every level writes the
 * same bytes. qa32 writes one row of nb blocks in the CK_QA32 layout; qa256 nb ck_qa256 blocks. */
typedef void (*ck_qa32_fn)(const float *x, char *row, long nb);
typedef void (*ck_qa256_fn)(const float *x, ck_qa256 *y, long nb);
void ck_quant_qa32_scalar(const float *x, char *row, long nb);
void ck_quant_qa256_scalar(const float *x, ck_qa256 *y, long nb);
#if defined(__x86_64__)
void ck_quant_qa32_avx2(const float *x, char *row, long nb);
void ck_quant_qa256_avx2(const float *x, ck_qa256 *y, long nb);
void ck_quant_qa32_avx512(const float *x, char *row, long nb);
void ck_quant_qa256_avx512(const float *x, ck_qa256 *y, long nb);
#endif

/* Packed 8-row groups (ck_pack.c): dot products of one group (8 rows) with nt activation rows;
 * res[t * 8 + r] = row r · token t. pw: the group's first group-block; nb blocks per row. */
#define CK_PACK_ROWS 8
typedef void (*ck_pdot_fn)(long nb, const void *pw, const void *x, long xstride, int nt, float *res);

/* The level to run: -1 means the default level; capped at the supported one. */
int ck_resolve_level(int level);

/* Fill table[type] with the level's kernels (entries left NULL are not provided). */
void ck_fill_scalar(ck_dot_fn *table);
#if defined(__x86_64__)
void ck_fill_avx2(ck_dot_fn *table);
void ck_fill_avx512(ck_dot_fn *table);
void ck_pfill_avx2(ck_pdot_fn *table);
void ck_pfill_avx512(ck_pdot_fn *table);
#endif

#endif
