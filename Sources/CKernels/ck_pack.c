/* Row-interleaved ("packed") copies of 32-element-block weights (Q8_0, Q4_0, Q5_0) for the SIMD
 * matmul kernels. Rows are taken in groups of 8; for each group and block the packed form holds
 *   8 half-precision scales (rows 0..7), then the quants interleaved so that one 32-byte vector
 *   gives, in its 32-bit lane r, four consecutive quants of row r:
 *   Q8_0: 8 vectors; vector k, byte 4r+e = quant 4k+e of row r (signed).
 *   Q4_0: 4 vectors; vector j, byte 4r+e: low nibble = quant 4j+e, high nibble = quant 16+4j+e.
 *   Q5_0: the same 4 vectors of low 4 bits, then 32 bytes whose byte 4r+e has, in bit k, the
 *         fifth bit of quant 4k+e of row r.
 * A group-block is exactly 8 original blocks long, so the packed copy has the size of the rows it
 * covers. With this layout a dot-product instruction sums four products per lane and lane r
 * accumulates row r: the sums of eight rows come out in one vector, with no horizontal adds. */
#include <stdlib.h>
#include "ck_internal.h"

long ck_pack_group_rows(void) { return CK_PACK_ROWS; }

int ck_pack_supported(int type) {
    return type == CK_TYPE_Q8_0 || type == CK_TYPE_Q4_0 || type == CK_TYPE_Q5_0;
}

/* CKERNELS_PACK=0 (diagnostic) turns packing off, for A/B timing. */
static int pack_disabled(void) {
    const char *e = getenv("CKERNELS_PACK");
    return e && e[0] == '0' && e[1] == 0;
}

long ck_pack_size(int type, long rows, long cols) {
    if (pack_disabled() || !ck_pack_supported(type) || rows < CK_PACK_ROWS || cols <= 0 || cols % 32 != 0) return 0;
    return (rows / CK_PACK_ROWS) * CK_PACK_ROWS * (cols / 32) * ck_type_size(type);
}

/* The 32 quants of one block as integers (Q8_0: -128..127, Q4_0: 0..15, Q5_0: 0..31). */
static void block_quants(int type, const uint8_t *blk, int q[32]) {
    if (type == CK_TYPE_Q8_0) {
        for (int i = 0; i < 32; i++) q[i] = (int8_t)blk[2 + i];
    } else if (type == CK_TYPE_Q4_0) {
        for (int i = 0; i < 16; i++) { q[i] = blk[2 + i] & 0x0F; q[i + 16] = blk[2 + i] >> 4; }
    } else {
        const uint32_t qh = ck_rd32(blk + 2);
        for (int i = 0; i < 16; i++) {
            q[i] = (blk[6 + i] & 0x0F) | (int)(((qh >> i) & 1u) << 4);
            q[i + 16] = (blk[6 + i] >> 4) | (int)(((qh >> (i + 16)) & 1u) << 4);
        }
    }
}

void ck_pack(int type, const void *w, long rows, long cols, void *dst, long first_group, long ngroups) {
    if (!ck_pack_supported(type) || cols <= 0 || cols % 32 != 0) return;
    const long nb = cols / 32, bs = ck_type_size(type), row_bytes = nb * bs, gb = CK_PACK_ROWS * bs;
    const uint8_t *src = w;
    uint8_t *out = dst;
    const long last = first_group + ngroups < rows / CK_PACK_ROWS ? first_group + ngroups : rows / CK_PACK_ROWS;
    for (long g = first_group; g < last; g++) {
        for (long b = 0; b < nb; b++) {
            uint8_t *o = out + (g * nb + b) * gb;
            int q[CK_PACK_ROWS][32];
            for (int r = 0; r < CK_PACK_ROWS; r++) {
                const uint8_t *blk = src + (g * CK_PACK_ROWS + r) * row_bytes + b * bs;
                memcpy(o + 2 * r, blk, 2); /* scale */
                block_quants(type, blk, q[r]);
            }
            uint8_t *p = o + 2 * CK_PACK_ROWS;
            if (type == CK_TYPE_Q8_0) {
                for (int k = 0; k < 8; k++)
                    for (int r = 0; r < CK_PACK_ROWS; r++)
                        for (int e = 0; e < 4; e++) p[32 * k + 4 * r + e] = (uint8_t)(int8_t)q[r][4 * k + e];
            } else {
                for (int j = 0; j < 4; j++)
                    for (int r = 0; r < CK_PACK_ROWS; r++)
                        for (int e = 0; e < 4; e++)
                            p[32 * j + 4 * r + e] = (uint8_t)((q[r][4 * j + e] & 0x0F) | ((q[r][16 + 4 * j + e] & 0x0F) << 4));
                if (type == CK_TYPE_Q5_0) {
                    uint8_t *h = p + 128;
                    for (int r = 0; r < CK_PACK_ROWS; r++)
                        for (int e = 0; e < 4; e++) {
                            uint8_t bits = 0;
                            for (int k = 0; k < 8; k++) bits |= (uint8_t)(((q[r][4 * k + e] >> 4) & 1) << k);
                            h[4 * r + e] = bits;
                        }
                }
            }
        }
    }
}

void ck_dequantize_packed_row(int type, const void *w, const void *packed, long rows, long cols, long row, float *dst) {
    if (!ck_pack_supported(type) || cols <= 0 || cols % 32 != 0 || row < 0 || row >= rows) return;
    const long nb = cols / 32, bs = ck_type_size(type), gb = CK_PACK_ROWS * bs;
    const long groups = rows / CK_PACK_ROWS;
    if (!packed || row >= groups * CK_PACK_ROWS) {
        ck_dequantize(type, (const uint8_t *)w + row * nb * bs, cols, dst);
        return;
    }
    const long g = row / CK_PACK_ROWS;
    const int r = (int)(row % CK_PACK_ROWS);
    for (long b = 0; b < nb; b++, dst += 32) {
        const uint8_t *o = (const uint8_t *)packed + (g * nb + b) * gb;
        const float d = ck_h2f(ck_rd16(o + 2 * r));
        const uint8_t *p = o + 2 * CK_PACK_ROWS;
        for (int k = 0; k < 8; k++)
            for (int e = 0; e < 4; e++) {
                const int i = 4 * k + e; /* element index within the block */
                int q;
                if (type == CK_TYPE_Q8_0) {
                    q = (int8_t)p[32 * k + 4 * r + e];
                } else {
                    const int j = k & 3;
                    const uint8_t byte = p[32 * j + 4 * r + e];
                    q = k < 4 ? (byte & 0x0F) : (byte >> 4);
                    if (type == CK_TYPE_Q5_0) q |= ((p[128 + 4 * r + e] >> k) & 1) << 4;
                    q -= type == CK_TYPE_Q4_0 ? 8 : 16;
                }
                dst[i] = (float)q * d;
            }
    }
}
