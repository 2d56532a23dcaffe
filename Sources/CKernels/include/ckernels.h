#ifndef CKERNELS_H
#define CKERNELS_H
/*
 * CKernels: quantized matrix kernels and a persistent thread pool.
 *
 * Weight types are numbered as in the GGUF format (ggml type ids). Activations are
 * quantized internally to 8-bit blocks (32-element blocks for Q4_0/Q5_0/Q8_0, 256-element
 * blocks with per-16 sums for the K-quants) so dot products run in integer SIMD.
 *
 * SIMD levels: 0 = portable scalar, 1 = AVX2+FMA+F16C, 2 = AVX-512 VNNI (256-bit, VL).
 * The level is chosen at run time with __builtin_cpu_supports; the environment variable
 * CKERNELS_LEVEL=0|1|2 caps it (a level the CPU lacks falls back to the best it has).
 * CKERNELS_FLOAT=1 (diagnostic, slow) makes ck_matmul compute with dequantized weights and
 * unquantized activations in double precision, to separate kernel error from model error.
 * CKERNELS_TILE=1..8 (diagnostic) sets how many tokens ck_matmul runs per pass over a weight
 * row (default 8), for timing comparisons.
 * CKERNELS_PACK=0 (diagnostic) makes ck_pack_size return 0, so no packed copies are made.
 */
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CK_TYPE_F32 = 0, CK_TYPE_F16 = 1, CK_TYPE_Q4_0 = 2, CK_TYPE_Q5_0 = 6, CK_TYPE_Q8_0 = 8,
    CK_TYPE_Q4_K = 12, CK_TYPE_Q5_K = 13, CK_TYPE_Q6_K = 14, CK_TYPE_BF16 = 30,
};

/* ---- thread pool ---------------------------------------------------------------- */

typedef struct ck_pool ck_pool;
typedef void (*ck_task_fn)(void *ctx, long index);

/* A pool of `threads` participants: threads-1 persistent worker threads plus the caller. */
ck_pool *ck_pool_create(int threads);
void ck_pool_destroy(ck_pool *pool);
int ck_pool_threads(const ck_pool *pool);
/* Runs fn(ctx, i) for every i in [0, n) across the workers and the calling thread and
 * returns when all have finished. Callers from different threads are serialized; a call
 * made from inside a task of the same pool runs serially on that thread. */
void ck_pool_run(ck_pool *pool, long n, ck_task_fn fn, void *ctx);

/* ---- kernels --------------------------------------------------------------------- */

/* Best level this CPU (and this build) supports. */
int ck_supported_level(void);
/* Level used when -1 is passed: min(CKERNELS_LEVEL if set, supported). */
int ck_default_level(void);
/* 1 when matmul/dequantize handle this GGUF type id. */
int ck_type_supported(int type);
/* Elements per block / bytes per block for a supported type (0 otherwise). */
long ck_block_size(int type);
long ck_type_size(int type);

/* out[t*rows + r] = dot(row r of w, x[t*cols ..< (t+1)*cols]) for t in [0, ntok).
 * w: rows*cols elements of `type`, row-major blocks; cols must be a multiple of the
 * block size. level: -1 for the default, else 0/1/2 (capped at the supported level).
 * pool may be NULL (runs on the calling thread). */
void ck_matmul(ck_pool *pool, int level, int type, const void *w, long rows, long cols,
               const float *x, long ntok, float *out);

/* The 8-bit activation blocks ck_matmul makes from `cols` floats for weights of `type` (a
 * block-quantized type): cols/32 blocks of ck_activation_block_bytes(type) bytes for the 32-element
 * types, cols/256 for the K-quants. For tests: every level writes the same bytes. */
void ck_quantize_activations(int level, int type, const float *x, long cols, void *out);
/* Bytes of one activation block for weights of `type` (0 for float types). */
long ck_activation_block_bytes(int type);

/* ---- packed weights ------------------------------------------------------------------------
 * A row-interleaved copy of a Q8_0 / Q4_0 / Q5_0 matrix (groups of ck_pack_group_rows() rows, see
 * ck_pack.c) that the SIMD levels multiply several times faster; the scalar level ignores it.
 * Rows past the last whole group are always read from the original. */
long ck_pack_group_rows(void);
int ck_pack_supported(int type);
/* Bytes of the packed copy of a rows×cols matrix (0 when the type or shape has none). */
long ck_pack_size(int type, long rows, long cols);
/* Writes groups [first_group, first_group + ngroups) of the packed copy of w into dst (the whole
 * packed buffer), so a large matrix can be packed piece by piece. */
void ck_pack(int type, const void *w, long rows, long cols, void *dst, long first_group, long ngroups);
/* Dequantizes row `row` of a rows×cols matrix from its packed copy (rows past the last whole group,
 * or packed == NULL: from the original w); same values as ck_dequantize of the original row. */
void ck_dequantize_packed_row(int type, const void *w, const void *packed, long rows, long cols, long row, float *dst);
/* ck_matmul with an optional packed copy made by ck_pack (NULL: as ck_matmul). */
void ck_matmul_packed(ck_pool *pool, int level, int type, const void *w, const void *packed, long rows, long cols,
                      const float *x, long ntok, float *out);

/* Dequantizes count/blocksize whole blocks of `type` from src into dst. */
void ck_dequantize(int type, const void *src, long count, float *dst);

/* ---- half-precision KV cache helpers ------------------------------------------------------
 * level: -1 for the default, else 0/1/2 (capped at the supported level). All levels perform the
 * same (unfused) multiplies and adds in the same order, so they agree bit for bit. */

/* y[i] = x[i] rounded to IEEE half precision (nearest, ties to even), as bit patterns. */
void ck_f32_to_f16(int level, const float *x, uint16_t *y, long n);
/* out[j] = sum_i q[i] * k[j*kstride + i] for j in [0, n), i in [0, dim); k holds halves. */
void ck_attn_scores_f16(int level, const float *q, const uint16_t *k, long kstride, long n, long dim, float *out);
/* out[i] += sum_j w[j] * v[j*vstride + i] for i in [0, dim), j = 0, 1, ..., n-1 in order. */
void ck_attn_accum_f16(int level, const float *w, const uint16_t *v, long vstride, long n, long dim, float *out);

/* ---- activations --------------------------------------------------------------------------- */

/* out[i] = gelu(g[i]) * u[i] with llama.cpp's half-precision GELU table rule: 0 for g ≤ -10, g for
 * g ≥ 10, else table[half(g)] with table[h] = half(gelu_tanh(h)) computed in float. Every level
 * gives the same bits. out may alias g or u. */
void ck_geglu_table(int level, const float *g, const float *u, float *out, long n);

#ifdef __cplusplus
}
#endif
#endif
