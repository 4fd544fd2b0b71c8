/*
 * mic_core.h — the C ABI of libmic-core, the whole contract.
 *
 * Conventions (see docs/formats.md for every stored byte):
 *  - Every function returns mic_status (MIC_OK = 0); results go through *_out
 *    parameters. mic_status_str() names every code. There is no "last error".
 *  - Opaque handles are freed by their matching *_free function, which accepts
 *    NULL. Byte results come back as mic_bytes and are freed by mic_bytes_free.
 *  - Inputs are borrowed for the duration of the call only.
 *  - No global mutable state: every function is safe to call from many threads
 *    at once, as long as one handle is not mutated by two threads at a time
 *    (mic_hlc is the exception: it is safe to share).
 *  - Decoders trust nothing: malformed input of any kind yields MIC_CORRUPT.
 *  - Integers in stored formats are little-endian.
 *
 * The part between the MIC_CDEF markers is plain C declarations without
 * preprocessor lines other than integer #defines, so that Python's cffi can
 * read it directly (src/micforge/core/_ffi.py).
 */
#ifndef MIC_CORE_H
#define MIC_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MIC_CDEF_BEGIN */

typedef int32_t mic_status;

/* Status codes: 0-19 core, 20-39 tree. Numbers are never reused. */
#define MIC_OK 0
#define MIC_INVALID_ARGUMENT 1
#define MIC_CORRUPT 2
#define MIC_OUT_OF_MEMORY 3
#define MIC_INVALID_HANDLE 4
#define MIC_BUFFER_TOO_SMALL 5
#define MIC_LIMIT_EXCEEDED 6
#define MIC_SIZE_MISMATCH 7
#define MIC_NODE_NOT_FOUND 20
#define MIC_LOADER_FAILED 21

/* A byte buffer allocated by the library; free with mic_bytes_free. */
typedef struct mic_bytes {
    uint8_t *ptr;
    uint64_t len;
} mic_bytes;

/* A static, NUL-terminated name for any status ("MIC_CORRUPT"); "MIC_UNKNOWN_STATUS" otherwise. */
const char *mic_status_str(mic_status status);
/* The library version, a static NUL-terminated string such as "0.1.0". */
mic_status mic_version(const char **version_out);
/* Frees bytes->ptr (NULL-safe) and zeroes *bytes so a second call is harmless. */
mic_status mic_bytes_free(mic_bytes *bytes);

/* ---- hashing (BLAKE3) ---- */
#define MIC_HASH_BYTES 32
#define MIC_PATH_HASH_BYTES 16

typedef struct mic_hasher mic_hasher;

mic_status mic_blake3(const uint8_t *data, uint64_t len, uint8_t *digest_out /* [32] */);
/* BLAKE3("blob\0" || varint(len) || content) */
mic_status mic_blob_hash(const uint8_t *data, uint64_t len, uint8_t *digest_out /* [32] */);
/* First 16 bytes of BLAKE3("path\0" || path): the bloom key of a path. */
mic_status mic_path_hash(const uint8_t *path, uint64_t len, uint8_t *hash_out /* [16] */);

/* Streaming BLAKE3. */
mic_status mic_hasher_new(mic_hasher **hasher_out);
/* Streaming blob hash: the content size must be known up front. update() beyond
 * size_bytes and final() before exactly size_bytes were fed fail with MIC_SIZE_MISMATCH. */
mic_status mic_blob_hasher_new(uint64_t size_bytes, mic_hasher **hasher_out);
mic_status mic_hasher_update(mic_hasher *hasher, const uint8_t *data, uint64_t len);
/* Does not consume the hasher. */
mic_status mic_hasher_final(const mic_hasher *hasher, uint8_t *digest_out /* [32] */);
mic_status mic_hasher_free(mic_hasher *hasher);

/* ---- bloom filters ----
 * Keys are paths (any 1..MIC_PATH_BYTES_MAX bytes without NUL); a list of keys
 * is one buffer of `count` keys separated by single NUL bytes, no trailing NUL.
 * A rejected batch changes nothing. Landings, sessions and rollups all use the
 * landing geometry, so rollups are unions. Serialized format: docs/formats.md. */
#define MIC_PATH_BYTES_MAX 4096
#define MIC_LANDING_BLOOM_BITS 8388608
#define MIC_LANDING_BLOOM_K 7
#define MIC_BLOOM_BITS_MIN 64
#define MIC_BLOOM_BITS_MAX 4294967296
#define MIC_BLOOM_K_MAX 32

typedef struct mic_bloom mic_bloom;

/* bits: a power of two in [MIC_BLOOM_BITS_MIN, MIC_BLOOM_BITS_MAX]; k in 1..MIC_BLOOM_K_MAX. */
mic_status mic_bloom_new(uint64_t bits, uint32_t k, mic_bloom **bloom_out);
/* Smallest power-of-two size meeting fp_rate (0 < fp_rate < 1) at expected_items. */
mic_status mic_bloom_new_for_items(uint64_t expected_items, double fp_rate, mic_bloom **bloom_out);
mic_status mic_bloom_free(mic_bloom *bloom);
mic_status mic_bloom_geometry(const mic_bloom *bloom, uint64_t *bits_out, uint32_t *k_out);
mic_status mic_bloom_add(mic_bloom *bloom, const uint8_t *path, uint64_t len);
mic_status mic_bloom_add_many(mic_bloom *bloom, const uint8_t *paths, uint64_t len, uint64_t count);
mic_status mic_bloom_may_contain(const mic_bloom *bloom, const uint8_t *path, uint64_t len, bool *result_out);
mic_status mic_bloom_may_contain_any(const mic_bloom *bloom, const uint8_t *paths, uint64_t len, uint64_t count, bool *result_out);
/* Could the filters share an item (bitwise AND non-empty)? Same geometry required. */
mic_status mic_bloom_intersects(const mic_bloom *a, const mic_bloom *b, bool *result_out);
/* into |= from; same geometry required. */
mic_status mic_bloom_union(mic_bloom *into, const mic_bloom *from);
mic_status mic_bloom_estimated_count(const mic_bloom *bloom, double *count_out);
/* Canonical form: the smaller of the dense and sparse encodings. */
mic_status mic_bloom_serialize(const mic_bloom *bloom, mic_bytes *bytes_out);
mic_status mic_bloom_deserialize(const uint8_t *data, uint64_t len, mic_bloom **bloom_out);

/* ---- hybrid logical clock ----
 * Timestamps: 48-bit wall milliseconds << 16 | 16-bit logical counter.
 * A mic_hlc may be shared by threads (its state is one atomic word).
 * wall_ms above 2^48-1 is MIC_INVALID_ARGUMENT; a clock that would pass
 * 2^64-1 is MIC_LIMIT_EXCEEDED. */
typedef struct mic_hlc mic_hlc;

mic_status mic_hlc_new(mic_hlc **hlc_out);
mic_status mic_hlc_free(mic_hlc *hlc);
mic_status mic_hlc_now(mic_hlc *hlc, uint64_t wall_ms, uint64_t *hlc_out);
mic_status mic_hlc_update(mic_hlc *hlc, uint64_t remote, uint64_t wall_ms, uint64_t *hlc_out);

/* ==== tree (owned by the tree engineer) ==== */
/* ==== end tree ==== */

/* MIC_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* MIC_CORE_H */
