"""Loads the bundled C library through cffi (ABI mode: no compiler needed at import).

The declarations below mirror `envelope-ffi/include/envelope.h`; the test suite checks that
every one of them appears there, so the two cannot drift apart silently. Pointers to bytes
are declared `char *` so that Python `bytes` pass without a copy; the C side reads them as
`uint8_t *` (same ABI).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cffi import FFI

CDEF = """
typedef uint32_t envelope_status;
typedef struct envelope_client envelope_client;
typedef struct envelope_client_options {
  uint32_t suite;
  bool cache_enabled;
  uint64_t max_age_ms;
  uint64_t max_messages;
  uint64_t max_bytes;
  uint64_t decrypt_ttl_ms;
  uint64_t decrypt_capacity;
  const char *encryption_context_json;
  size_t encryption_context_json_len;
  uint64_t negative_ttl_ms;
  uint32_t max_unwraps_per_second;
  const char *dek_store_uri;
  size_t dek_store_uri_len;
  uint32_t compact_version;
  bool refuse_compact_v2;
  const char *index_store_uri;
  size_t index_store_uri_len;
  const char *audit_json;
  size_t audit_json_len;
} envelope_client_options;
const char *envelope_version(void);
const char *envelope_crypto_provider(void);
uint32_t envelope_fips_mode(void);
const char *envelope_status_message(uint32_t status);
envelope_status envelope_last_error_message(char *buf, size_t buf_len, size_t *out_len);
envelope_status envelope_client_options_default(struct envelope_client_options *out);
envelope_status envelope_client_new(const char *key_uri, size_t key_uri_len, const struct envelope_client_options *options, struct envelope_client **out);
void envelope_client_free(struct envelope_client *client);
void envelope_bytes_free(char *ptr, size_t len);
envelope_status envelope_encrypt_into(const struct envelope_client *client, const char *plaintext, size_t plaintext_len, const char *aad, size_t aad_len, char *out_buf, size_t out_cap, size_t *out_len);
envelope_status envelope_decrypt_into(const struct envelope_client *client, const char *ciphertext, size_t ciphertext_len, const char *aad, size_t aad_len, char *out_buf, size_t out_cap, size_t *out_len);
envelope_status envelope_encrypt(const struct envelope_client *client, const char *plaintext, size_t plaintext_len, const char *aad, size_t aad_len, char **out, size_t *out_len);
envelope_status envelope_encrypt_text(const struct envelope_client *client, const char *plaintext, size_t plaintext_len, const char *aad, size_t aad_len, char **out, size_t *out_len);
envelope_status envelope_decrypt(const struct envelope_client *client, const char *ciphertext, size_t ciphertext_len, const char *aad, size_t aad_len, char **out, size_t *out_len);
envelope_status envelope_decrypt_text(const struct envelope_client *client, const char *text, size_t text_len, const char *aad, size_t aad_len, char **out, size_t *out_len);
envelope_status envelope_reencrypt(const struct envelope_client *client, const char *ciphertext, size_t ciphertext_len, const char *aad, size_t aad_len, char **out, size_t *out_len);
envelope_status envelope_rewrap(const struct envelope_client *client, const char *ciphertext, size_t ciphertext_len, char **out, size_t *out_len, bool *changed);
envelope_status envelope_inspect_json(const char *ciphertext, size_t ciphertext_len, char **out, size_t *out_len);
typedef struct envelope_stream_encryptor envelope_stream_encryptor;
typedef struct envelope_stream_decryptor envelope_stream_decryptor;
envelope_status envelope_stream_encryptor_new(const struct envelope_client *client, const char *aad, size_t aad_len, uint32_t segment_size, uint32_t threads, struct envelope_stream_encryptor **out);
envelope_status envelope_stream_encrypt_update(struct envelope_stream_encryptor *encryptor, const char *data, size_t data_len, char **out, size_t *out_len);
envelope_status envelope_stream_encrypt_finish(struct envelope_stream_encryptor *encryptor, char **out, size_t *out_len);
void envelope_stream_encryptor_free(struct envelope_stream_encryptor *encryptor);
envelope_status envelope_stream_header_len(const char *prefix, size_t prefix_len, size_t *out_len);
envelope_status envelope_stream_decryptor_new(const struct envelope_client *client, const char *header, size_t header_len, const char *aad, size_t aad_len, uint32_t threads, struct envelope_stream_decryptor **out);
envelope_status envelope_stream_decryptor_layout(struct envelope_stream_decryptor *decryptor, uint32_t *segment_size, size_t *header_len);
envelope_status envelope_stream_segment_count(struct envelope_stream_decryptor *decryptor, uint64_t total_len, uint64_t *count);
envelope_status envelope_stream_decrypt_segment(struct envelope_stream_decryptor *decryptor, uint64_t index, bool is_last, const char *sealed, size_t sealed_len, char *out_buf, size_t out_cap, size_t *out_len);
envelope_status envelope_stream_decrypt_update(struct envelope_stream_decryptor *decryptor, const char *data, size_t data_len, char **out, size_t *out_len);
envelope_status envelope_stream_decrypt_finish(struct envelope_stream_decryptor *decryptor, char **out, size_t *out_len);
void envelope_stream_decryptor_free(struct envelope_stream_decryptor *decryptor);
envelope_status envelope_client_stats_json(const struct envelope_client *client_ptr, char **out, size_t *out_len);
envelope_status envelope_encrypt_batch(const struct envelope_client *client, size_t count, const char *data, size_t data_len, const size_t *data_offsets, const char *aad, size_t aad_len, const size_t *aad_offsets, uint32_t *statuses, char **out, size_t *out_len, size_t *out_offsets);
envelope_status envelope_decrypt_batch(const struct envelope_client *client, size_t count, const char *data, size_t data_len, const size_t *data_offsets, const char *aad, size_t aad_len, const size_t *aad_offsets, uint32_t *statuses, char **out, size_t *out_len, size_t *out_offsets);
envelope_status envelope_dek_store_import_json(const char *store_uri, size_t store_uri_len, const char *rows_json, size_t rows_json_len, size_t *imported);
envelope_status envelope_blind_index(const struct envelope_client *client, const char *index, size_t index_len, const char *value, size_t value_len, const char *custom_applied, size_t custom_applied_len, uint32_t form, char **out, size_t *out_len);
envelope_status envelope_blind_index_batch(const struct envelope_client *client, const char *index, size_t index_len, size_t count, const char *data, size_t data_len, const size_t *data_offsets, const char *custom_applied, size_t custom_applied_len, uint32_t form, uint32_t *statuses, char **out, size_t *out_len, size_t *out_offsets);
envelope_status envelope_blind_index_query_values(const struct envelope_client *client, const char *index, size_t index_len, const char *value, size_t value_len, const char *custom_applied, size_t custom_applied_len, uint32_t form, char **out, size_t *out_len, size_t *count);
envelope_status envelope_blind_index_check(const struct envelope_client *client, const char *index, size_t index_len, const char *normalizer, size_t normalizer_len, uint32_t bits);
envelope_status envelope_blind_index_define(const struct envelope_client *client, const char *index, size_t index_len, const char *normalizer, size_t normalizer_len, const char *mode, size_t mode_len, uint32_t bits, bool rotate, uint32_t *version);
envelope_status envelope_blind_index_set_state(const struct envelope_client *client, const char *index, size_t index_len, uint32_t version, uint32_t state);
envelope_status envelope_normalize(const char *normalizer, size_t normalizer_len, const char *value, size_t value_len, char **out, size_t *out_len);
envelope_status envelope_local_keyring_create(const char *path, size_t path_len, const char *key_id, size_t key_id_len);
envelope_status envelope_local_keyring_rotate(const char *path, size_t path_len, const char *key_id, size_t key_id_len, uint32_t *new_version);
envelope_status envelope_local_keyring_destroy_version(const char *path, size_t path_len, const char *key_id, size_t key_id_len, uint32_t version);
"""

ffi = FFI()
ffi.cdef(CDEF)


def _library_path() -> str:
    override = os.environ.get("ENVELOPE_FFI_LIB")
    if override:
        return override
    name = "libenvelope_ffi.dylib" if sys.platform == "darwin" else "libenvelope_ffi.so"
    return str(Path(__file__).resolve().parent / name)


lib = ffi.dlopen(_library_path())
