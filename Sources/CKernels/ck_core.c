/* Thread pool, CPU dispatch, activation quantization and the matmul driver. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <math.h>
#include "ck_internal.h"

/* ---- thread pool ------------------------------------------------------------------- */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spin iterations before a worker sleeps on the condition variable (~1-2 ms). */
enum { CK_SPIN = 1 << 16 };

struct ck_pool {
    int nthreads; /* participants including the caller */
    pthread_t *threads;
    pthread_mutex_t call_mu; /* serializes callers (and guards scratch) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleepers; /* guarded by mu */
    _Atomic unsigned gen;
    _Atomic int stop;
    _Atomic long next;
    _Atomic int pending;
    ck_task_fn fn;
    void *ctx;
    long n;
    void *scratch;
    size_t scratch_cap;
};

static _Thread_local ck_pool *tls_pool;

static void run_items(ck_pool *p) {
    const ck_task_fn fn = p->fn;
    void *const ctx = p->ctx;
    const long n = p->n;
    for (;;) {
        long i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= n) break;
        fn(ctx, i);
    }
}

static void *worker_main(void *arg) {
    ck_pool *p = arg;
    tls_pool = p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        long spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            if (++spins < CK_SPIN) { cpu_relax(); continue; }
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->cv, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
            break;
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        run_items(p);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

ck_pool *ck_pool_create(int threads) {
    ck_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (threads < 1) threads = 1;
    if (threads > 1024) threads = 1024;
    p->nthreads = threads;
    pthread_mutex_init(&p->call_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (threads > 1) {
        p->threads = calloc((size_t)threads - 1, sizeof(pthread_t));
        int started = 0;
        if (p->threads) {
            for (; started < threads - 1; started++)
                if (pthread_create(&p->threads[started], NULL, worker_main, p) != 0) break;
        }
        p->nthreads = started + 1; /* run with what we could start */
    }
    return p;
}

void ck_pool_destroy(ck_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->call_mu);
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads - 1; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_unlock(&p->call_mu);
    pthread_mutex_destroy(&p->call_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->scratch);
    free(p);
}

int ck_pool_threads(const ck_pool *p) { return p ? p->nthreads : 1; }

/* Runs the job; call_mu held by the caller and tls_pool == p. */
static void dispatch(ck_pool *p, long n, ck_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (p->nthreads == 1 || n == 1) {
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->sleepers) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    run_items(p);
    long spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < CK_SPIN) cpu_relax();
        else sched_yield();
    }
}

void ck_pool_run(ck_pool *p, long n, ck_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || tls_pool == p) { /* no pool, or nested call from inside one of its tasks */
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&p->call_mu);
    ck_pool *saved = tls_pool;
    tls_pool = p;
    dispatch(p, n, fn, ctx);
    tls_pool = saved;
    pthread_mutex_unlock(&p->call_mu);
}

/* ---- CPU dispatch ---------------------------------------------------------------------- */

static ck_dot_fn g_tables[3][CK_NTYPES];
static ck_pdot_fn g_ptables[3][CK_NTYPES];
static ck_qa32_fn g_qa32[3] = {ck_quant_qa32_scalar, ck_quant_qa32_scalar, ck_quant_qa32_scalar};
static ck_qa256_fn g_qa256[3] = {ck_quant_qa256_scalar, ck_quant_qa256_scalar, ck_quant_qa256_scalar};
static int g_supported, g_default, g_float_ref, g_tile = CK_TILE;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_tables(void) {
    ck_fill_scalar(g_tables[0]);
    g_supported = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        /* F16C has no __builtin_cpu_supports name in every compiler; AVX2+FMA CPUs have it. */
        ck_fill_avx2(g_tables[1]);
        ck_pfill_avx2(g_ptables[1]);
        g_qa32[1] = ck_quant_qa32_avx2;
        g_qa256[1] = ck_quant_qa256_avx2;
        g_supported = 1;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) {
            ck_fill_avx512(g_tables[2]);
            ck_pfill_avx512(g_ptables[2]);
            g_qa32[2] = ck_quant_qa32_avx512;
            g_qa256[2] = ck_quant_qa256_avx512;
            g_supported = 2;
        }
    }
#endif
    const char *fr = getenv("CKERNELS_FLOAT");
    g_float_ref = fr && fr[0] == '1';
    /* CKERNELS_TILE=1..CK_TILE (diagnostic): tokens per pass over the weights, for A/B timing. */
    const char *tl = getenv("CKERNELS_TILE");
    if (tl && tl[0] >= '1' && tl[0] <= '0' + CK_TILE && tl[1] == 0) g_tile = tl[0] - '0';
    g_default = g_supported;
    const char *env = getenv("CKERNELS_LEVEL");
    if (env && env[0] >= '0' && env[0] <= '2' && env[1] == 0) {
        int lv = env[0] - '0';
        if (lv < g_default) g_default = lv;
    }
}

int ck_supported_level(void) { pthread_once(&g_once, init_tables); return g_supported; }
int ck_default_level(void) { pthread_once(&g_once, init_tables); return g_default; }
int ck_resolve_level(int level) {
    pthread_once(&g_once, init_tables);
    if (level < 0) level = g_default;
    return level > g_supported ? g_supported : level;
}

int ck_type_supported(int type) {
    switch (type) {
    case CK_TYPE_F32: case CK_TYPE_F16: case CK_TYPE_BF16: case CK_TYPE_Q8_0: case CK_TYPE_Q4_0:
    case CK_TYPE_Q5_0: case CK_TYPE_Q4_K: case CK_TYPE_Q5_K: case CK_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

long ck_block_size(int type) {
    switch (type) {
    case CK_TYPE_F32: case CK_TYPE_F16: case CK_TYPE_BF16: return 1;
    case CK_TYPE_Q8_0: case CK_TYPE_Q4_0: case CK_TYPE_Q5_0: return 32;
    case CK_TYPE_Q4_K: case CK_TYPE_Q5_K: case CK_TYPE_Q6_K: return 256;
    default: return 0;
    }
}

long ck_type_size(int type) {
    switch (type) {
    case CK_TYPE_F32: return 4;
    case CK_TYPE_F16: case CK_TYPE_BF16: return 2;
    case CK_TYPE_Q8_0: return 34;
    case CK_TYPE_Q4_0: return 18;
    case CK_TYPE_Q5_0: return 22;
    case CK_TYPE_Q4_K: return 144;
    case CK_TYPE_Q5_K: return 176;
    case CK_TYPE_Q6_K: return 210;
    default: return 0;
    }
}

/* ---- activation quantization ------------------------------------------------------------ */

/* Activations are quantized exactly as llama.cpp's CPU backend does (verified against its
 * quantize_row_q8_0 / quantize_row_q8_K over ~10^6 random values: identical int8 values and
 * scales), because tiny differences here are amplified by every later quantization step:
 *   Q8_0 (for Q4_0/Q5_0/Q8_0 weights): q = round-half-even(x * (127/amax)); the scale used in
 *        the dot product is amax/127 rounded to half precision (the block stores it as F16).
 *   Q8_K (for K-quant weights): q = round-half-even(x * (127/amax)) and the scale is the float
 *        1/(127/amax), not rounded (llama.cpp negates both when the extreme value is positive;
 *        the products are the same). */

void ck_quant_qa32_scalar(const float *x, char *row, long nb) {
    float *yd = (float *)row;
    int32_t *ysum = (int32_t *)(row + 4 * nb);
    int8_t *yq = (int8_t *)(row + 8 * nb);
    for (long b = 0; b < nb; b++, x += 32, yq += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float id = amax != 0 ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            int v = (int)nearbyintf(x[j] * id);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            yq[j] = (int8_t)v;
            sum += v;
        }
        yd[b] = ck_round_half(amax / 127.0f);
        ysum[b] = sum;
    }
}

void ck_quant_qa256_scalar(const float *x, ck_qa256 *y, long nb) {
    for (long b = 0; b < nb; b++, x += 256) {
        float amax = 0;
        for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float id = amax != 0 ? 127.0f / amax : 0.0f;
        for (int g = 0; g < 16; g++) {
            int32_t sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                int v = (int)nearbyintf(x[j] * id);
                v = v > 127 ? 127 : v < -127 ? -127 : v;
                y[b].q[j] = (int8_t)v;
                sum += v;
            }
            y[b].bsum[g] = (int16_t)sum;
        }
        y[b].d = amax != 0 ? 1.0f / id : 0.0f;
    }
}

/* ---- matmul -------------------------------------------------------------------------------- */

typedef struct {
    ck_dot_fn fn;
    ck_pdot_fn pfn; /* packed kernel, or NULL */
    const char *pw; /* packed copy (ck_pack), or NULL */
    long groups;    /* whole 8-row groups in pw */
    const char *w;
    long row_bytes, rows, nb, ntok, chunk;
    const float *x;
    long cols;
    char *xq;
    long xstride;
    int act; /* 0 float, 1 qa32, 2 qa256 */
    int type;
    ck_qa32_fn qa32;
    ck_qa256_fn qa256;
    int tile; /* tokens per pass over a weight row, 1..CK_TILE */
    float *out;
} mm_job;

static void quant_task(void *c, long t) {
    mm_job *j = c;
    if (j->act == 1) j->qa32(j->x + t * j->cols, j->xq + t * j->xstride, j->nb);
    else j->qa256(j->x + t * j->cols, (ck_qa256 *)(j->xq + t * j->xstride), j->nb);
}

/* Float reference: dequantized weights times unquantized activations (CKERNELS_FLOAT=1). */
static void float_row_task(void *c, long i) {
    const mm_job *j = c;
    const long r0 = i * j->chunk, r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
    float *buf = malloc((size_t)j->cols * sizeof(float));
    if (!buf) abort();
    for (long r = r0; r < r1; r++) {
        ck_dequantize(j->type, j->w + r * j->row_bytes, j->cols, buf);
        for (long t = 0; t < j->ntok; t++) {
            const float *xt = j->x + t * j->cols;
            double s = 0;
            for (long k = 0; k < j->cols; k++) s += (double)buf[k] * xt[k];
            j->out[t * j->rows + r] = (float)s;
        }
    }
    free(buf);
}

static void row_task(void *c, long i) {
    const mm_job *j = c;
    const long r0 = i * j->chunk, r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
    float res[CK_TILE];
    const int tile = j->tile;
    for (long t0 = 0; t0 < j->ntok; t0 += tile) {
        const int nt = j->ntok - t0 < tile ? (int)(j->ntok - t0) : tile;
        const char *xt = j->xq + t0 * j->xstride;
        float *o = j->out + t0 * j->rows;
        for (long r = r0; r < r1; r++) {
            j->fn(j->nb, j->w + r * j->row_bytes, xt, j->xstride, nt, res);
            for (int k = 0; k < nt; k++) o[k * j->rows + r] = res[k];
        }
    }
}

/* Packed path: task i covers groups [i·chunk, (i+1)·chunk); the task past the last group runs the
 * leftover rows (rows % 8) with the unpacked kernel. */
static void group_task(void *c, long i) {
    const mm_job *j = c;
    const long g0 = i * j->chunk;
    if (g0 >= j->groups) {
        float res[CK_TILE];
        for (long t0 = 0; t0 < j->ntok; t0 += j->tile) {
            const int nt = j->ntok - t0 < j->tile ? (int)(j->ntok - t0) : j->tile;
            for (long r = j->groups * CK_PACK_ROWS; r < j->rows; r++) {
                j->fn(j->nb, j->w + r * j->row_bytes, j->xq + t0 * j->xstride, j->xstride, nt, res);
                for (int k = 0; k < nt; k++) j->out[(t0 + k) * j->rows + r] = res[k];
            }
        }
        return;
    }
    const long g1 = g0 + j->chunk < j->groups ? g0 + j->chunk : j->groups;
    const long gbytes = CK_PACK_ROWS * j->row_bytes;
    float res[CK_TILE * CK_PACK_ROWS];
    for (long t0 = 0; t0 < j->ntok; t0 += j->tile) {
        const int nt = j->ntok - t0 < j->tile ? (int)(j->ntok - t0) : j->tile;
        const char *xt = j->xq + t0 * j->xstride;
        for (long g = g0; g < g1; g++) {
            j->pfn(j->nb, j->pw + g * gbytes, xt, j->xstride, nt, res);
            for (int k = 0; k < nt; k++) memcpy(j->out + (t0 + k) * j->rows + g * CK_PACK_ROWS, res + CK_PACK_ROWS * k,
                                                CK_PACK_ROWS * sizeof(float));
        }
    }
}

void ck_matmul(ck_pool *p, int level, int type, const void *w, long rows, long cols,
               const float *x, long ntok, float *out) {
    ck_matmul_packed(p, level, type, w, NULL, rows, cols, x, ntok, out);
}

void ck_matmul_packed(ck_pool *p, int level, int type, const void *w, const void *packed, long rows, long cols,
                      const float *x, long ntok, float *out) {
    if (rows <= 0 || ntok <= 0 || !ck_type_supported(type)) return;
    level = ck_resolve_level(level);
    const long bsize = ck_block_size(type);
    if (cols <= 0 || cols % bsize != 0) return;

    mm_job j;
    j.fn = g_tables[level][type];
    j.pfn = packed && !g_float_ref && rows >= CK_PACK_ROWS ? g_ptables[level][type] : NULL;
    j.pw = packed;
    j.groups = j.pfn ? rows / CK_PACK_ROWS : 0;
    j.type = type;
    j.qa32 = g_qa32[level];
    j.qa256 = g_qa256[level];
    j.tile = g_tile;
    const int float_ref = g_float_ref;
    j.w = w;
    j.rows = rows;
    j.cols = cols;
    j.nb = cols / bsize;
    j.row_bytes = j.nb * ck_type_size(type);
    j.ntok = ntok;
    j.x = x;
    j.out = out;
    j.act = bsize == 1 ? 0 : bsize == 32 ? 1 : 2;
    j.xstride = j.act == 0 ? cols * (long)sizeof(float)
              : j.act == 1 ? j.nb * (long)CK_QA32_BYTES : j.nb * (long)sizeof(ck_qa256);

    const int nested = p && tls_pool == p;
    const int threads = (p && !nested) ? p->nthreads : 1;
    long ntasks;
    if (j.pfn) {
        /* groups per task: about 8 tasks per thread, at most 8 groups (64 rows) */
        long chunk = j.groups / (threads * 8L);
        chunk = chunk < 1 ? 1 : chunk > 8 ? 8 : chunk;
        j.chunk = chunk;
        ntasks = (j.groups + chunk - 1) / chunk + (rows % CK_PACK_ROWS != 0);
    } else {
        long chunk = rows / (threads * 8L);
        chunk = chunk < 4 ? 4 : chunk > 64 ? 64 : chunk;
        j.chunk = chunk;
        ntasks = (rows + chunk - 1) / chunk;
    }
    ck_task_fn task = float_ref ? float_row_task : j.pfn ? group_task : row_task;

    if (!p || nested) {
        void *tmp = NULL;
        if (j.act != 0) {
            tmp = malloc((size_t)(ntok * j.xstride));
            if (!tmp) abort();
            j.xq = tmp;
            for (long t = 0; t < ntok; t++) quant_task(&j, t);
        } else {
            j.xq = (char *)x;
        }
        for (long i = 0; i < ntasks; i++) task(&j, i);
        free(tmp);
        return;
    }

    pthread_mutex_lock(&p->call_mu);
    ck_pool *saved = tls_pool;
    tls_pool = p;
    if (j.act != 0) {
        const size_t need = (size_t)(ntok * j.xstride);
        if (need > p->scratch_cap) {
            free(p->scratch);
            p->scratch = NULL;
            if (posix_memalign(&p->scratch, 64, need) != 0) abort();
            p->scratch_cap = need;
        }
        j.xq = p->scratch;
        if (ntok >= 4) dispatch(p, ntok, quant_task, &j);
        else for (long t = 0; t < ntok; t++) quant_task(&j, t);
    } else {
        j.xq = (char *)x;
    }
    dispatch(p, ntasks, task, &j);
    tls_pool = saved;
    pthread_mutex_unlock(&p->call_mu);
}

void ck_quantize_activations(int level, int type, const float *x, long cols, void *out) {
    level = ck_resolve_level(level);
    const long bsize = ck_block_size(type);
    if (bsize <= 1 || cols <= 0 || cols % bsize != 0) return;
    if (bsize == 32) g_qa32[level](x, out, cols / 32);
    else g_qa256[level](x, out, cols / 256);
}

long ck_activation_block_bytes(int type) {
    const long bsize = ck_block_size(type);
    return bsize == 32 ? CK_QA32_BYTES : bsize == 256 ? (long)sizeof(ck_qa256) : 0;
}
