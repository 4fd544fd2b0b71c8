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
/* Accepts any geometry the format allows, so a 17-byte input can make it
 * allocate 512 MiB (2^32 bits): for untrusted bytes use _at_most. */
mic_status mic_bloom_deserialize(const uint8_t *data, uint64_t len, mic_bloom **bloom_out);
/* As mic_bloom_deserialize, but well-formed bytes declaring more than
 * filter_bits_max bits are MIC_LIMIT_EXCEEDED, before anything is allocated
 * (malformed bytes are MIC_CORRUPT first). */
mic_status mic_bloom_deserialize_at_most(const uint8_t *data, uint64_t len, uint64_t filter_bits_max, mic_bloom **bloom_out);

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

/* ---- codecs of stored objects (docs/formats.md) ----
 * Variable-length parts are spans (offset, len) into one buffer: encoders read
 * their inputs as spans of `buffer`; decoders return spans of `data` (valid as
 * long as `data` is) and allocate nothing. Lists of paths are NUL-separated and
 * strictly increasing. Encoders reject bad input with MIC_INVALID_ARGUMENT (or
 * MIC_LIMIT_EXCEEDED for a limit) and compute the bloom themselves; decoders
 * reject anything malformed with MIC_CORRUPT. */
#define MIC_HEAD_BYTES 56
#define MIC_SESSION_ID_BYTES 16
#define MIC_OWNER_BYTES_MAX 1024
#define MIC_GOAL_BYTES_MAX 16777216
#define MIC_ENTRY_BYTES_MAX 16777216
#define MIC_OPERATIONS_MAX 1000000
#define MIC_DECISIONS_MAX 1000000
#define MIC_MESSAGES_MAX 1000000

#define MIC_OP_WRITE 1
#define MIC_OP_DELETE 2
#define MIC_MODE_FILE 0
#define MIC_MODE_EXEC 1
#define MIC_MODE_SYMLINK 2
#define MIC_STATE_OPEN 0
#define MIC_STATE_LANDED 1
#define MIC_STATE_CONFLICTED 2
#define MIC_STATE_ABANDONED 3
#define MIC_ROLE_USER 0
#define MIC_ROLE_AGENT 1
#define MIC_ROLE_SYSTEM 2

typedef struct mic_span {
    uint64_t offset;
    uint64_t len;
} mic_span;

typedef struct mic_head {
    uint64_t position;
    uint8_t tree_hash[32];
    uint64_t hlc;
} mic_head;

mic_status mic_head_encode(const mic_head *head, uint8_t *bytes_out /* [MIC_HEAD_BYTES] */);
mic_status mic_head_decode(const uint8_t *data, uint64_t len, mic_head *head_out);

typedef struct mic_rollup_fields {
    uint8_t level;           /* 1, 2, 3: windows of 100 / 10,000 / 1,000,000 landings */
    uint64_t start_position; /* >= 1 */
    uint64_t count;          /* landings included, 1..window */
    mic_span bloom;          /* serialized bloom, landing geometry */
} mic_rollup_fields;

mic_status mic_rollup_encode(const mic_rollup_fields *fields, const uint8_t *buffer, uint64_t len, mic_bytes *bytes_out);
mic_status mic_rollup_decode(const uint8_t *data, uint64_t len, mic_rollup_fields *fields_out);

typedef struct mic_landing_fields {
    uint64_t position; /* >= 1 */
    uint8_t session_id[16];
    uint8_t parent_tree[32];
    uint8_t tree_hash[32];
    uint64_t hlc;
    uint64_t path_count;
    mic_span author; /* UTF-8, <= MIC_OWNER_BYTES_MAX */
    mic_span goal;   /* UTF-8, <= MIC_GOAL_BYTES_MAX */
    mic_span paths;  /* path_count paths, NUL-separated, strictly increasing */
    mic_span bloom;  /* decode only: serialized bloom of paths (landing geometry) */
} mic_landing_fields;

mic_status mic_landing_encode(const mic_landing_fields *fields, const uint8_t *buffer, uint64_t len, mic_bytes *bytes_out);
mic_status mic_landing_decode(const uint8_t *data, uint64_t len, mic_landing_fields *fields_out);

typedef struct mic_session_fields {
    uint8_t id[16];
    uint8_t state; /* MIC_STATE_* */
    uint64_t base_position;
    uint64_t landed_position;
    uint64_t attempt_position;
    uint64_t created_at; /* HLC */
    uint64_t updated_at; /* HLC */
    uint64_t op_count;
    uint64_t decision_count;
    uint64_t message_count;
    uint64_t conflict_count;
    mic_span owner;          /* UTF-8 */
    mic_span goal;           /* UTF-8 */
    mic_span op_kinds;       /* op_count bytes, MIC_OP_* */
    mic_span op_modes;       /* op_count bytes, MIC_MODE_* (0 for deletes) */
    mic_span op_sizes;       /* op_count little-endian u64 (0 for deletes) */
    mic_span op_hashes;      /* 32 bytes per write, in operation order */
    mic_span op_paths;       /* op_count paths, NUL-separated, strictly increasing */
    mic_span decision_ats;   /* decision_count little-endian u64 (HLC) */
    mic_span decision_lens;  /* decision_count little-endian u32 */
    mic_span decision_text;  /* the decisions' UTF-8, concatenated */
    mic_span message_roles;  /* message_count bytes, MIC_ROLE_* */
    mic_span message_ats;    /* message_count little-endian u64 (HLC) */
    mic_span message_lens;   /* message_count little-endian u32 */
    mic_span message_text;   /* the messages' UTF-8, concatenated */
    mic_span conflict_paths; /* conflict_count paths, NUL-separated, strictly increasing */
    mic_span bloom;          /* decode only: serialized bloom of op paths (landing geometry) */
} mic_session_fields;

mic_status mic_session_encode(const mic_session_fields *fields, const uint8_t *buffer, uint64_t len, mic_bytes *bytes_out);
mic_status mic_session_decode(const uint8_t *data, uint64_t len, mic_session_fields *fields_out);

/* ==== tree (owned by the tree engineer) ==== */
/* The content-addressed chunked tree (prolly tree): path -> (blob hash, mode,
 * size). Node bytes and every record format below: docs/formats.md "Tree nodes".
 * The library never touches storage: nodes are fetched through the loader the
 * handle was made with, and new nodes come back for the caller to store.
 * Paths are raw bytes (1..MIC_TREE_PATH_BYTES_MAX), ordered byte-wise.
 *
 * Batch records (little-endian):
 *   entry   path_len u16 | path | blob_hash[32] | mode u8 (0 file, 1 exec, 2 symlink) | size u64
 *   edit    op u8 (MIC_TREE_OP_*) | path_len u16 | path | write only: blob_hash[32] | mode u8 | size u64
 *   node    hash[32] | len u32 | node bytes
 *   change  kind u8 (MIC_TREE_CHANGE_*) | path_len u16 | path |
 *           old blob_hash[32] | old mode u8 | old size u64 | new blob_hash[32] | new mode u8 | new size u64
 *           (the absent side of an add or delete is zeros)
 * Entries and edits must be in strictly increasing path order (else MIC_INVALID_ARGUMENT). */
#define MIC_TREE_PATH_BYTES_MAX 4096
#define MIC_TREE_NODE_BYTES_MAX 65536
#define MIC_TREE_LIST_ENTRIES_MAX 100000
#define MIC_TREE_CEILINGS_KEYS_MAX 10000
#define MIC_TREE_OP_WRITE 1
#define MIC_TREE_OP_DELETE 2
#define MIC_TREE_CHANGE_ADDED 1
#define MIC_TREE_CHANGE_MODIFIED 2
#define MIC_TREE_CHANGE_DELETED 3

typedef struct mic_tree mic_tree;

/* Sets *data_out / *len_out to the bytes of the node named hash. They must stay
 * valid until the loader is called again or the tree call returns (the library
 * copies them, and checks they hash to `hash`: MIC_CORRUPT otherwise). Return
 * MIC_OK, MIC_NODE_NOT_FOUND, or any other status, reported as MIC_LOADER_FAILED.
 * The empty tree's node is known to the library and never loaded. */
typedef mic_status (*mic_tree_load_fn)(void *ctx, const uint8_t *hash /* [32] */,
                                       const uint8_t **data_out, uint64_t *len_out);

mic_status mic_tree_new(mic_tree_load_fn load, void *ctx, mic_tree **tree_out);
mic_status mic_tree_free(mic_tree *tree);
/* The root hash of the empty tree (one empty leaf node). */
mic_status mic_tree_empty_hash(uint8_t *hash_out /* [32] */);
/* Validates node bytes (MIC_CORRUPT if malformed); reports its level and entry count. */
mic_status mic_tree_node_check(const uint8_t *data, uint64_t len, uint8_t *level_out, uint32_t *entries_out);
/* Builds the tree of sorted entry records in one pass; nodes_out gets every node (node records). */
mic_status mic_tree_build(mic_tree *tree, const uint8_t *entries, uint64_t entries_len,
                          uint8_t *root_out /* [32] */, mic_bytes *nodes_out);
/* Applies sorted edit records to root; nodes_out gets the nodes of the new tree
 * that root lacks (O(edits * depth) of them). Deleting an absent path and writing
 * an identical entry are no-ops. */
mic_status mic_tree_apply(mic_tree *tree, const uint8_t *root /* [32] */, const uint8_t *edits,
                          uint64_t edits_len, uint8_t *root_out /* [32] */, mic_bytes *nodes_out);
mic_status mic_tree_lookup(mic_tree *tree, const uint8_t *root /* [32] */, const uint8_t *path,
                           uint64_t path_len, bool *found_out, uint8_t *blob_hash_out /* [32] */,
                           uint8_t *mode_out, uint64_t *size_out);
/* Up to limit (<= MIC_TREE_LIST_ENTRIES_MAX) entry records whose path starts with
 * prefix (bytes) and, if has_start_after, sorts after start_after; in path order. */
mic_status mic_tree_list(mic_tree *tree, const uint8_t *root /* [32] */, const uint8_t *prefix,
                         uint64_t prefix_len, const uint8_t *start_after, uint64_t start_after_len,
                         bool has_start_after, uint64_t limit, mic_bytes *entries_out, uint64_t *count_out);
/* For each key record of keys (u16 length, then 1..MIC_TREE_PATH_BYTES_MAX path
 * bytes; any order; at most MIC_TREE_CEILINGS_KEYS_MAX, else MIC_LIMIT_EXCEEDED), a
 * ceiling record: a byte 1 and the entry record of the first path at or above the
 * key, or a byte 0 if there is none. One call loads and checks each node it needs
 * once, however many keys pass through it. count_out: keys read. */
mic_status mic_tree_ceilings(mic_tree *tree, const uint8_t *root /* [32] */, const uint8_t *keys,
                             uint64_t keys_len, mic_bytes *ceilings_out, uint64_t *count_out);
/* Change records from old_root to new_root in path order; subtrees with equal
 * hashes are skipped unread. nodes_read_out (may be NULL) counts loader calls. */
mic_status mic_tree_diff(mic_tree *tree, const uint8_t *old_root /* [32] */, const uint8_t *new_root /* [32] */,
                         mic_bytes *changes_out, uint64_t *nodes_read_out);
/* As mic_tree_diff, but at most max_changes records (0: all of them): the walk
 * stops as soon as one more change exists, and truncated_out (may be NULL) is set
 * to 1 then, else 0. A caller that refuses a diff past its bound so never builds
 * more than the bound's worth of records. */
mic_status mic_tree_diff_bounded(mic_tree *tree, const uint8_t *old_root /* [32] */,
                                 const uint8_t *new_root /* [32] */, uint64_t max_changes,
                                 mic_bytes *changes_out, uint64_t *nodes_read_out,
                                 uint8_t *truncated_out);
/* Entry count and total blob size, read from the root node alone. */
mic_status mic_tree_stats(mic_tree *tree, const uint8_t *root /* [32] */, uint64_t *count_out, uint64_t *size_bytes_out);
/* ==== end tree ==== */

/* MIC_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* MIC_CORE_H */
