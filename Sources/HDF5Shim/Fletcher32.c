// HDF5's Fletcher32 checksum, computed fast. HDF5's own H5_checksum_fletcher32 adds one 16-bit
// word at a time (about 2 GB/s); the checkpoint writer checksums every chunk itself so that it can
// hand finished chunks to H5Dwrite_chunk, and needs several times that. The result is bit-identical
// to HDF5's (checked by UnrollDataTests against files HDF5 verifies on read).
//
// HDF5's definition, over big-endian 16-bit words w_0..w_{n-1} (an odd last byte is the high byte
// of one more word): sum1 += w_i, sum2 += sum1, both folded with (x & 0xffff) + (x >> 16), result
// (sum2 << 16) | sum1. Folding preserves the value mod 65535 and never turns a positive sum into 0,
// so each half is 0 when all data bytes are 0, and otherwise the representative of its sum
// mod 65535 in 1...65535. Here sum1 = Σ w_i and sum2 = Σ (n - i)·w_i are computed in blocks with
// LANES independent lane sums (which the compiler vectorises), combined and reduced after each block.
#include "HDF5Shim.h"
#include <string.h>

enum {
    LANES = 16,
    // Rounds per block: lane sums are 32-bit; after r rounds a lane's second sum is at most
    // 65535·r(r+1)/2, which stays below 2^32 up to r = 361.
    ROUNDS = 256,
};

static inline uint32_t be16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return (uint32_t)__builtin_bswap16(v);
}

// One function, compiled for AVX2 and baseline x86-64; the loader picks one (target_clones).
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target_clones("avx2", "default")))
#endif
uint32_t ch5_fletcher32(const void *data, size_t nbytes) {
    const uint8_t *p = data;
    size_t words = nbytes / 2;
    uint64_t sum1 = 0, sum2 = 0; /* reduced mod 65535 after every block */
    int nonzero = 0;
    const size_t block = (size_t)LANES * ROUNDS;
    while (words >= block) {
        uint32_t a[LANES] = {0}, c[LANES] = {0};
        for (int r = 0; r < ROUNDS; r++) {
            for (int l = 0; l < LANES; l++) {
                a[l] += be16(p + 2 * l);
                c[l] += a[l];
            }
            p += 2 * LANES;
        }
        /* Word j = r·LANES + l of the block has weight block - j = LANES·(ROUNDS - r) - l. */
        uint64_t sa = 0, sc = 0, sla = 0;
        for (int l = 0; l < LANES; l++) {
            sa += a[l];
            sc += c[l];
            sla += (uint64_t)l * a[l];
        }
        nonzero |= sa != 0;
        sum2 = (sum2 + (block % 65535) * sum1 + (LANES * sc - sla)) % 65535;
        sum1 = (sum1 + sa) % 65535;
        words -= block;
    }
    /* Fewer than one block of words left: sums stay far below 2^64. */
    for (size_t i = 0; i < words; i++, p += 2) {
        uint32_t w = be16(p);
        nonzero |= w != 0;
        sum1 += w;
        sum2 += sum1;
    }
    if (nbytes % 2) {
        uint32_t w = (uint32_t)p[0] << 8;
        nonzero |= w != 0;
        sum1 += w;
        sum2 += sum1;
    }
    if (!nonzero) return 0;
    sum1 %= 65535;
    sum2 %= 65535;
    return (uint32_t)((sum2 == 0 ? 65535 : sum2) << 16 | (sum1 == 0 ? 65535 : sum1));
}
