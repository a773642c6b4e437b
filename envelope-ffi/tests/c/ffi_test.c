/*
 * Exercises every function of the envelope C ABI, including its error paths. Built and run
 * by scripts/test-ffi.sh under valgrind (leaks and memory errors fail the run) and again built
 * with AddressSanitizer and UndefinedBehaviorSanitizer.
 */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, " (last error: %s)\n", last_error());          \
        }                                                                  \
    } while (0)

#define STATUS(expr, expected) \
    CHECK((expr) == (expected), "%s returned %u, expected %u", #expr, (unsigned)(expr), (unsigned)(expected))

/* Library outputs are length-delimited, not NUL-terminated: search within their length. */
static int contains(const uint8_t *buf, size_t len, const char *needle) {
    return memmem(buf, len, needle, strlen(needle)) != NULL;
}

static const char *last_error(void) {
    static char buf[512];
    size_t len = 0;
    envelope_last_error_message((uint8_t *)buf, sizeof buf, &len);
    return buf;
}

#define S(str) (const uint8_t *)(str), strlen(str)

static char keyring_path[256];
static char uri[300];

static envelope_client *new_client(const struct envelope_client_options *options) {
    envelope_client *client = NULL;
    envelope_status st = envelope_client_new(S(uri), options, &client);
    CHECK(st == ENVELOPE_OK && client != NULL, "client_new: %u", (unsigned)st);
    return client;
}

static void test_basics(void) {
    CHECK(strlen(envelope_version()) > 0, "version");
    CHECK(strcmp(envelope_crypto_provider(), "aws-lc-rs") == 0, "default provider %s", envelope_crypto_provider());
    CHECK(envelope_fips_mode() == 0, "not a FIPS build");
    CHECK(strstr(envelope_status_message(ENVELOPE_DECRYPTION_FAILED), "decryption failed") != NULL,
          "status message");
    CHECK(strcmp(envelope_status_message(12345), "unknown status code") == 0, "unknown status");
    STATUS(envelope_client_options_default(NULL), ENVELOPE_NULL_ARGUMENT);

    envelope_client *client = NULL;
    STATUS(envelope_client_new(S("s3://nope"), NULL, &client), ENVELOPE_INVALID_KEY_URI);
    CHECK(client == NULL, "out untouched on failure");
    CHECK(strstr(last_error(), "unknown scheme") != NULL, "detailed last error");
    /* Every backend is in the default build: a gcp-kms:// URI reaches the GCP backend's checks. */
    STATUS(envelope_client_new(S("gcp-kms://projects/p/locations/l/keyRings/r"), NULL, &client),
           ENVELOPE_INVALID_KEY_URI);
    CHECK(client == NULL, "out untouched on failure");
    CHECK(strstr(last_error(), "cryptoKeys/K") != NULL, "the GCP backend's message");
    STATUS(envelope_client_new(S(uri), NULL, NULL), ENVELOPE_NULL_ARGUMENT);
    STATUS(envelope_client_new(NULL, 5, NULL, &client), ENVELOPE_NULL_ARGUMENT);
    STATUS(envelope_client_new((const uint8_t *)"\xff\xfe", 2, NULL, &client), ENVELOPE_INVALID_ARGUMENT);

    struct envelope_client_options options;
    STATUS(envelope_client_options_default(&options), ENVELOPE_OK);
    CHECK(options.negative_ttl_ms == 60000 && options.max_unwraps_per_second == 0,
          "hostile-input defaults %llu %u", (unsigned long long)options.negative_ttl_ms,
          (unsigned)options.max_unwraps_per_second);
    options.suite = 77;
    STATUS(envelope_client_new(S(uri), &options, &client), ENVELOPE_INVALID_ARGUMENT);
    envelope_client_options_default(&options);
    options.max_messages = (1ULL << 32) + 1;
    STATUS(envelope_client_new(S(uri), &options, &client), ENVELOPE_INVALID_CONFIG);
    envelope_client_options_default(&options);
    options.encryption_context_json = (const uint8_t *)"[1,2]";
    options.encryption_context_json_len = 5;
    STATUS(envelope_client_new(S(uri), &options, &client), ENVELOPE_INVALID_ARGUMENT);

    envelope_client_free(NULL);
    envelope_bytes_free(NULL, 0);
}

static void test_round_trips(void) {
    envelope_client *client = new_client(NULL);
    const char *aad = "patients.ssn#1";
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    STATUS(envelope_encrypt(client, S("123-45-6789"), S(aad), &ct, &ct_len), ENVELOPE_OK);
    CHECK(ct_len == 11 + 138, "ciphertext length %zu", ct_len);

    uint8_t *pt = NULL;
    size_t pt_len = 0;
    STATUS(envelope_decrypt(client, ct, ct_len, S(aad), &pt, &pt_len), ENVELOPE_OK);
    CHECK(pt_len == 11 && memcmp(pt, "123-45-6789", 11) == 0, "plaintext");
    envelope_bytes_free(pt, pt_len);

    pt = NULL;
    STATUS(envelope_decrypt(client, ct, ct_len, S("patients.ssn#2"), &pt, &pt_len), ENVELOPE_DECRYPTION_FAILED);
    CHECK(pt == NULL, "no output on failure");
    STATUS(envelope_decrypt(client, ct, ct_len - 3, S(aad), &pt, &pt_len), ENVELOPE_DECRYPTION_FAILED);
    STATUS(envelope_decrypt(client, ct, 10, S(aad), &pt, &pt_len), ENVELOPE_MALFORMED);
    STATUS(envelope_decrypt(NULL, ct, ct_len, S(aad), &pt, &pt_len), ENVELOPE_NULL_ARGUMENT);
    STATUS(envelope_decrypt(client, NULL, 4, S(aad), &pt, &pt_len), ENVELOPE_NULL_ARGUMENT);
    STATUS(envelope_decrypt(client, ct, ct_len, S(aad), NULL, &pt_len), ENVELOPE_NULL_ARGUMENT);
    STATUS(envelope_decrypt(client, ct, ct_len, S(aad), &pt, NULL), ENVELOPE_NULL_ARGUMENT);

    /* Empty plaintext and AAD as NULL with length 0. */
    uint8_t *empty = NULL;
    size_t empty_len = 0;
    STATUS(envelope_encrypt(client, NULL, 0, NULL, 0, &empty, &empty_len), ENVELOPE_OK);
    STATUS(envelope_decrypt(client, empty, empty_len, NULL, 0, &pt, &pt_len), ENVELOPE_OK);
    CHECK(pt_len == 0, "empty plaintext");
    envelope_bytes_free(pt, pt_len);
    envelope_bytes_free(empty, empty_len);

    uint8_t *text = NULL;
    size_t text_len = 0;
    STATUS(envelope_encrypt_text(client, S("ada@example.org"), S(aad), &text, &text_len), ENVELOPE_OK);
    CHECK(text_len > 4 && memcmp(text, "ev1:", 4) == 0, "text prefix");
    STATUS(envelope_decrypt_text(client, text, text_len, S(aad), &pt, &pt_len), ENVELOPE_OK);
    CHECK(pt_len == 15 && memcmp(pt, "ada@example.org", 15) == 0, "text plaintext");
    envelope_bytes_free(pt, pt_len);
    STATUS(envelope_decrypt_text(client, (const uint8_t *)"ev1:\xff", 5, S(aad), &pt, &pt_len), ENVELOPE_INVALID_ARGUMENT);
    STATUS(envelope_decrypt_text(client, S("ev9:AAAA"), S(aad), &pt, &pt_len), ENVELOPE_UNSUPPORTED_FORMAT_VERSION);

    /* Caller-buffer variants: fits, too small (required length reported), decrypt. */
    uint8_t buf[512];
    size_t need = 0;
    STATUS(envelope_encrypt_into(client, S("into"), S(aad), buf, sizeof buf, &need), ENVELOPE_OK);
    CHECK(need == 4 + 138, "encrypt_into length %zu", need);
    uint8_t small[8];
    size_t small_len = 0;
    STATUS(envelope_encrypt_into(client, S("into"), S(aad), small, sizeof small, &small_len), ENVELOPE_BUFFER_TOO_SMALL);
    CHECK(small_len == need, "required length reported");
    uint8_t plain[512];
    size_t plain_len = 0;
    STATUS(envelope_decrypt_into(client, buf, need, S(aad), plain, sizeof plain, &plain_len), ENVELOPE_OK);
    CHECK(plain_len == 4 && memcmp(plain, "into", 4) == 0, "decrypt_into");
    STATUS(envelope_decrypt_into(client, buf, need, S("wrong"), plain, sizeof plain, &plain_len), ENVELOPE_DECRYPTION_FAILED);
    CHECK(plain[0] == 0 && plain[1] == 0 && plain[2] == 0 && plain[3] == 0, "no plaintext left after a failed decrypt_into");
    size_t short_len = 0;
    STATUS(envelope_decrypt_into(client, buf, need, S(aad), plain, 3, &short_len), ENVELOPE_BUFFER_TOO_SMALL);
    CHECK(short_len == 4, "decrypt_into reports the plaintext length %zu", short_len);
    /* The output may not overlap an input (decrypting a buffer onto itself). */
    STATUS(envelope_decrypt_into(client, buf, need, S(aad), buf + 10, 64, &plain_len), ENVELOPE_INVALID_ARGUMENT);
    STATUS(envelope_encrypt_into(client, buf, 4, S(aad), buf, sizeof buf, &plain_len), ENVELOPE_INVALID_ARGUMENT);
    STATUS(envelope_decrypt_into(client, buf, need, S(aad), NULL, 16, &plain_len), ENVELOPE_NULL_ARGUMENT);
    STATUS(envelope_encrypt_into(client, S("into"), S(aad), buf, sizeof buf, NULL), ENVELOPE_NULL_ARGUMENT);

    uint8_t *json = NULL;
    size_t json_len = 0;
    STATUS(envelope_inspect_json(ct, ct_len, &json, &json_len), ENVELOPE_OK);
    CHECK(json_len > 0 && contains(json, json_len, "\"key_version\":\"1\""), "inspect json");
    envelope_bytes_free(json, json_len);
    STATUS(envelope_inspect_json(text, text_len, &json, &json_len), ENVELOPE_OK);
    envelope_bytes_free(json, json_len);
    STATUS(envelope_inspect_json(S("garbage"), &json, &json_len), ENVELOPE_MALFORMED);
    uint8_t bad_version[4] = {'E', 'V', 7, 1};
    STATUS(envelope_inspect_json(bad_version, 4, &json, &json_len), ENVELOPE_UNSUPPORTED_FORMAT_VERSION);

    STATUS(envelope_client_stats_json(client, &json, &json_len), ENVELOPE_OK);
    CHECK(contains(json, json_len, "\"kms_generate_calls\":1"), "one DEK for all encrypts");
    envelope_bytes_free(json, json_len);
    STATUS(envelope_client_stats_json(NULL, &json, &json_len), ENVELOPE_NULL_ARGUMENT);

    uint8_t *again = NULL;
    size_t again_len = 0;
    STATUS(envelope_reencrypt(client, ct, ct_len, S(aad), &again, &again_len), ENVELOPE_OK);
    CHECK(again_len == ct_len && memcmp(again, ct, ct_len) != 0, "reencrypted");
    STATUS(envelope_reencrypt(client, ct, ct_len, S("other"), &again, &again_len), ENVELOPE_DECRYPTION_FAILED);
    envelope_bytes_free(again, again_len);

    envelope_bytes_free(text, text_len);
    envelope_bytes_free(ct, ct_len);
    envelope_client_free(client);
}

static void test_rotation(void) {
    envelope_client *client = new_client(NULL);
    uint8_t *ct = NULL, *text = NULL, *out = NULL;
    size_t ct_len = 0, text_len = 0, out_len = 0;
    bool changed = true;
    STATUS(envelope_encrypt(client, S("alpha"), S("a"), &ct, &ct_len), ENVELOPE_OK);
    STATUS(envelope_encrypt_text(client, S("bravo"), S("b"), &text, &text_len), ENVELOPE_OK);
    STATUS(envelope_rewrap(client, ct, ct_len, &out, &out_len, &changed), ENVELOPE_OK);
    CHECK(!changed && out_len == ct_len && memcmp(out, ct, ct_len) == 0, "no-op rewrap");
    envelope_bytes_free(out, out_len);

    uint32_t version = 0;
    STATUS(envelope_local_keyring_rotate(S(keyring_path), S("default"), &version), ENVELOPE_OK);
    CHECK(version == 2, "rotated to %u", version);
    STATUS(envelope_local_keyring_rotate(S(keyring_path), S("default"), NULL), ENVELOPE_NULL_ARGUMENT);
    envelope_client_free(client);
    client = new_client(NULL); /* a fresh client sees the rotation at once */

    STATUS(envelope_rewrap(client, ct, ct_len, &out, &out_len, &changed), ENVELOPE_OK);
    CHECK(changed, "rewrap changed the header");
    /* Body bytes (the last 5 + 16) identical. */
    CHECK(memcmp(out + out_len - 21, ct + ct_len - 21, 21) == 0, "body unchanged");
    uint8_t *text_out = NULL;
    size_t text_out_len = 0;
    STATUS(envelope_rewrap(client, text, text_len, &text_out, &text_out_len, &changed), ENVELOPE_OK);
    CHECK(changed && memcmp(text_out, "ev1:", 4) == 0, "text rewrap keeps the text form");
    STATUS(envelope_rewrap(client, ct, ct_len, &out, &out_len, NULL), ENVELOPE_NULL_ARGUMENT);

    STATUS(envelope_local_keyring_destroy_version(S(keyring_path), S("default"), 1), ENVELOPE_OK);
    envelope_client *reader = new_client(NULL);
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    STATUS(envelope_decrypt(reader, ct, ct_len, S("a"), &pt, &pt_len), ENVELOPE_KEY_VERSION_DESTROYED);
    STATUS(envelope_decrypt(reader, out, out_len, S("a"), &pt, &pt_len), ENVELOPE_OK);
    CHECK(pt_len == 5 && memcmp(pt, "alpha", 5) == 0, "rewrapped decrypts");
    envelope_bytes_free(pt, pt_len);
    STATUS(envelope_decrypt_text(reader, text_out, text_out_len, S("b"), &pt, &pt_len), ENVELOPE_OK);
    envelope_bytes_free(pt, pt_len);
    STATUS(envelope_local_keyring_destroy_version(S(keyring_path), S("default"), 2), ENVELOPE_INVALID_CONFIG);
    STATUS(envelope_local_keyring_create(S(keyring_path), S("default")), ENVELOPE_KEYRING_ERROR);

    envelope_bytes_free(text_out, text_out_len);
    envelope_bytes_free(out, out_len);
    envelope_bytes_free(text, text_len);
    envelope_bytes_free(ct, ct_len);
    envelope_client_free(reader);
    envelope_client_free(client);
}

static void test_batches(void) {
    struct envelope_client_options options;
    envelope_client_options_default(&options);
    options.suite = ENVELOPE_SUITE_XCHACHA20_POLY1305;
    options.encryption_context_json = (const uint8_t *)"{\"app\":\"billing\"}";
    options.encryption_context_json_len = strlen("{\"app\":\"billing\"}");
    envelope_client *client = new_client(&options);

    const char *data = "onetwothree";
    size_t data_offsets[4] = {0, 3, 6, 11};
    const char *aads = "r1r2r3";
    size_t aad_offsets[4] = {0, 2, 4, 6};
    uint32_t statuses[3] = {99, 99, 99};
    size_t out_offsets[4];
    uint8_t *out = NULL;
    size_t out_len = 0;
    STATUS(envelope_encrypt_batch(client, 3, (const uint8_t *)data, 11, data_offsets, (const uint8_t *)aads, 6,
                                  aad_offsets, statuses, &out, &out_len, out_offsets),
           ENVELOPE_OK);
    CHECK(statuses[0] == 0 && statuses[1] == 0 && statuses[2] == 0, "batch statuses");
    CHECK(out_offsets[3] == out_len, "offsets cover the output");

    /* Decrypt them back, with item 1 tampered. */
    out[out_offsets[2] - 1] ^= 1;
    uint8_t *pts = NULL;
    size_t pts_len = 0;
    size_t pt_offsets[4];
    STATUS(envelope_decrypt_batch(client, 3, out, out_len, out_offsets, (const uint8_t *)aads, 6, aad_offsets,
                                  statuses, &pts, &pts_len, pt_offsets),
           ENVELOPE_OK);
    CHECK(statuses[0] == ENVELOPE_OK && statuses[1] == ENVELOPE_DECRYPTION_FAILED && statuses[2] == ENVELOPE_OK,
          "per-item statuses %u %u %u", statuses[0], statuses[1], statuses[2]);
    CHECK(pt_offsets[1] - pt_offsets[0] == 3 && memcmp(pts, "one", 3) == 0, "item 0");
    CHECK(pt_offsets[2] == pt_offsets[1], "failed item is empty");
    CHECK(memcmp(pts + pt_offsets[2], "three", 5) == 0, "item 2");
    CHECK(strstr(last_error(), "item 1") != NULL, "first failure named");
    envelope_bytes_free(pts, pts_len);

    size_t bad_offsets[4] = {0, 5, 3, 11};
    STATUS(envelope_encrypt_batch(client, 3, (const uint8_t *)data, 11, bad_offsets, NULL, 0, NULL, statuses, &pts,
                                  &pts_len, pt_offsets),
           ENVELOPE_INVALID_ARGUMENT);
    size_t too_far[4] = {0, 3, 6, 12};
    STATUS(envelope_encrypt_batch(client, 3, (const uint8_t *)data, 11, too_far, NULL, 0, NULL, statuses, &pts,
                                  &pts_len, pt_offsets),
           ENVELOPE_INVALID_ARGUMENT);
    STATUS(envelope_encrypt_batch(client, 3, (const uint8_t *)data, 11, data_offsets, NULL, 0, NULL, NULL, &pts,
                                  &pts_len, pt_offsets),
           ENVELOPE_NULL_ARGUMENT);
    /* No AAD at all, a shared column AAD, and an empty batch. */
    STATUS(envelope_encrypt_batch(client, 3, (const uint8_t *)data, 11, data_offsets, NULL, 0, NULL, statuses, &pts,
                                  &pts_len, pt_offsets),
           ENVELOPE_OK);
    envelope_bytes_free(pts, pts_len);
    uint8_t *column = NULL;
    size_t column_len = 0, column_offsets[4];
    STATUS(envelope_encrypt_batch(client, 3, (const uint8_t *)data, 11, data_offsets, S("patients.ssn"), NULL,
                                  statuses, &column, &column_len, column_offsets),
           ENVELOPE_OK);
    uint8_t *single = NULL;
    size_t single_len = 0;
    STATUS(envelope_decrypt(client, column + column_offsets[2], column_offsets[3] - column_offsets[2],
                            S("patients.ssn"), &single, &single_len),
           ENVELOPE_OK);
    CHECK(single_len == 5 && memcmp(single, "three", 5) == 0, "shared AAD applied to each item");
    envelope_bytes_free(single, single_len);
    STATUS(envelope_decrypt(client, column, column_offsets[1], NULL, 0, &single, &single_len),
           ENVELOPE_DECRYPTION_FAILED);
    envelope_bytes_free(column, column_len);
    size_t zero[1] = {0};
    STATUS(envelope_encrypt_batch(client, 0, NULL, 0, zero, NULL, 0, NULL, statuses, &pts, &pts_len, pt_offsets),
           ENVELOPE_OK);
    envelope_bytes_free(pts, pts_len);

    envelope_bytes_free(out, out_len);
    envelope_client_free(client);

    envelope_client_options_default(&options);
    options.cache_enabled = false;
    client = new_client(&options);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    for (int i = 0; i < 3; i++) {
        STATUS(envelope_encrypt(client, S("x"), NULL, 0, &ct, &ct_len), ENVELOPE_OK);
        envelope_bytes_free(ct, ct_len);
    }
    uint8_t *json = NULL;
    size_t json_len = 0;
    envelope_client_stats_json(client, &json, &json_len);
    CHECK(contains(json, json_len, "\"kms_generate_calls\":3"), "cache disabled: a DEK per call");
    envelope_bytes_free(json, json_len);
    envelope_client_free(client);
}

static char store_uri[300];

static void test_compact(void) {
    struct envelope_client_options options;
    STATUS(envelope_client_options_default(&options), ENVELOPE_OK);
    CHECK(options.dek_store_uri == NULL && options.dek_store_uri_len == 0, "no store by default");
    options.dek_store_uri = (const uint8_t *)store_uri;
    options.dek_store_uri_len = strlen(store_uri);
    envelope_client *client = new_client(&options);
    const char *aad = "patients.ssn#1";
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    STATUS(envelope_encrypt(client, S("123-45-6789"), S(aad), &ct, &ct_len), ENVELOPE_OK);
    CHECK(ct_len == 11 + 72, "compact ciphertext length %zu", ct_len);
    CHECK(ct_len > 2 && ct[2] == 3, "format version 3 (key-committing) by default");

    /* A second client on the same store (another process, say) reads it. */
    envelope_client *reader = new_client(&options);
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    STATUS(envelope_decrypt(reader, ct, ct_len, S(aad), &pt, &pt_len), ENVELOPE_OK);
    CHECK(pt_len == 11 && memcmp(pt, "123-45-6789", 11) == 0, "compact plaintext");
    envelope_bytes_free(pt, pt_len);
    STATUS(envelope_decrypt(reader, ct, ct_len, S("patients.ssn#2"), &pt, &pt_len), ENVELOPE_DECRYPTION_FAILED);

    uint8_t *json = NULL;
    size_t json_len = 0;
    STATUS(envelope_inspect_json(ct, ct_len, &json, &json_len), ENVELOPE_OK);
    CHECK(contains(json, json_len, "\"format_version\":3") && contains(json, json_len, "\"dek_id\":1") &&
              contains(json, json_len, "\"overhead\":72") && contains(json, json_len, "\"committing\":true"),
          "compact inspect %.*s", (int)json_len, (const char *)json);
    envelope_bytes_free(json, json_len);

    /* Version 2 only on request (40 bytes, not key-committing); a reader can refuse it. */
    struct envelope_client_options v2_options = options;
    v2_options.compact_version = 2;
    envelope_client *v2 = new_client(&v2_options);
    uint8_t *old = NULL;
    size_t old_len = 0;
    STATUS(envelope_encrypt(v2, S("123-45-6789"), S(aad), &old, &old_len), ENVELOPE_OK);
    CHECK(old_len == 11 + 40 && old[2] == 2, "compact version 2: %zu bytes", old_len);
    struct envelope_client_options strict_options = options;
    strict_options.refuse_compact_v2 = true;
    envelope_client *strict = new_client(&strict_options);
    STATUS(envelope_decrypt(strict, old, old_len, S(aad), &pt, &pt_len), ENVELOPE_UNSUPPORTED_FORMAT_VERSION);
    STATUS(envelope_decrypt(strict, ct, ct_len, S(aad), &pt, &pt_len), ENVELOPE_OK);
    envelope_bytes_free(pt, pt_len);
    envelope_bytes_free(old, old_len);
    envelope_client_free(strict);
    envelope_client_free(v2);
    v2_options.compact_version = 4;
    envelope_client *four = NULL;
    STATUS(envelope_client_new(S(uri), &v2_options, &four), ENVELOPE_INVALID_ARGUMENT);
    CHECK(four == NULL, "no client for compact version 4");

    /* Without a store, a compact value is refused with a message that says why. */
    envelope_client *plain = new_client(NULL);
    STATUS(envelope_decrypt(plain, ct, ct_len, S(aad), &pt, &pt_len), ENVELOPE_INVALID_CONFIG);
    CHECK(strstr(last_error(), "DEK store") != NULL, "says a store is needed: %s", last_error());

    /* A DEK id the store lacks. */
    uint8_t forged[11 + 72];
    CHECK(ct_len == sizeof forged, "the forged copy fits");
    memcpy(forged, ct, sizeof forged);
    forged[11] = 9;
    STATUS(envelope_decrypt(reader, forged, ct_len, S(aad), &pt, &pt_len), ENVELOPE_DEK_NOT_FOUND);

    /* Importing rows: a taken id is a store error; a bad store URI is a config error. */
    const char *row =
        "[{\"id\": 1, \"suite\": \"AES-256-GCM\", \"provider\": \"local\", \"key_id\": \"default\","
        " \"key_version\": \"1\", \"wrapped_dek\": \"00ff\", \"state\": \"active\","
        " \"commitment\": \"0000000000000000000000000000000000000000000000000000000000000000\"}]";
    size_t imported = 99;
    STATUS(envelope_dek_store_import_json(S(store_uri), S(row), &imported), ENVELOPE_DEK_STORE_ERROR);
    CHECK(imported == 0, "nothing imported: %zu", imported);
    STATUS(envelope_dek_store_import_json(S("mysql://x"), S(row), NULL), ENVELOPE_INVALID_CONFIG);
    STATUS(envelope_dek_store_import_json(S(store_uri), S("[{\"id\": 0}]"), NULL), ENVELOPE_INVALID_CONFIG);

    options.dek_store_uri = (const uint8_t *)"redis://x";
    options.dek_store_uri_len = strlen("redis://x");
    envelope_client *bad = NULL;
    STATUS(envelope_client_new(S(uri), &options, &bad), ENVELOPE_INVALID_CONFIG);
    CHECK(bad == NULL, "no client on error");

    envelope_bytes_free(ct, ct_len);
    envelope_client_free(plain);
    envelope_client_free(reader);
    envelope_client_free(client);
}

static char index_store_uri[300];

static void test_blind_index(void) {
    struct envelope_client_options options;
    STATUS(envelope_client_options_default(&options), ENVELOPE_OK);
    CHECK(options.index_store_uri == NULL && options.index_store_uri_len == 0, "no index store by default");
    uint8_t *out = NULL;
    size_t out_len = 0, count = 0;

    /* Without an index store: a clear invalid argument. */
    envelope_client *none = new_client(&options);
    STATUS(envelope_blind_index(none, S("users.email"), S("a@b.example"), NULL, 0, ENVELOPE_INDEX_BINARY, &out, &out_len),
           ENVELOPE_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "index_store_uri") != NULL, "says what is missing: %s", last_error());
    envelope_client_free(none);

    options.index_store_uri = (const uint8_t *)index_store_uri;
    options.index_store_uri_len = strlen(index_store_uri);
    envelope_client *client = new_client(&options);
    STATUS(envelope_blind_index(client, S("users.email"), S("x"), NULL, 0, ENVELOPE_INDEX_BINARY, &out, &out_len),
           ENVELOPE_INDEX_NOT_FOUND);
    CHECK(out == NULL, "no output on failure");
    uint32_t version = 0;
    STATUS(envelope_blind_index_define(client, S("users.email"), S("nfkc_casefold+trim_collapse"), NULL, 0, 0, false, &version),
           ENVELOPE_OK);
    CHECK(version == 1, "version %u", version);
    STATUS(envelope_blind_index_define(client, S("users.email"), NULL, 0, NULL, 0, 0, false, NULL), ENVELOPE_INVALID_CONFIG);
    STATUS(envelope_blind_index_define(client, S("bad"), S("lower"), NULL, 0, 0, false, NULL), ENVELOPE_INVALID_CONFIG);
    STATUS(envelope_blind_index_define(client, S("bad"), NULL, 0, S("private"), 0, false, NULL), ENVELOPE_INVALID_ARGUMENT);

    STATUS(envelope_blind_index(client, S("users.email"), S("  A@B.Example "), NULL, 0, ENVELOPE_INDEX_BINARY, &out, &out_len),
           ENVELOPE_OK);
    CHECK(out_len == 10 && out[0] == 0 && out[1] == 1, "binary form: version 1 + 8 bytes (%zu)", out_len);
    uint8_t v1[10];
    memcpy(v1, out, 10);
    envelope_bytes_free(out, out_len);
    STATUS(envelope_blind_index(client, S("users.email"), S("a@b.example"), NULL, 0, ENVELOPE_INDEX_TEXT, &out, &out_len),
           ENVELOPE_OK);
    CHECK(out_len > 4 && memcmp(out, "bi1:", 4) == 0, "text form");
    envelope_bytes_free(out, out_len);
    STATUS(envelope_blind_index(client, S("users.email"), S("a"), NULL, 0, 7, &out, &out_len), ENVELOPE_INVALID_ARGUMENT);
    STATUS(envelope_blind_index(client, S("users.email"), S("a"), S("email_v1"), ENVELOPE_INDEX_BINARY, &out, &out_len),
           ENVELOPE_INDEX_MISMATCH);

    STATUS(envelope_blind_index_define(client, S("users.email"), NULL, 0, NULL, 0, 0, true, &version), ENVELOPE_OK);
    CHECK(version == 2, "rotated to %u", version);
    STATUS(envelope_blind_index_query_values(client, S("users.email"), S("a@b.example"), NULL, 0, ENVELOPE_INDEX_BINARY,
                                             &out, &out_len, &count),
           ENVELOPE_OK);
    CHECK(count == 2 && out_len == 2 * (2 + 10), "two length-prefixed values (%zu, %zu)", count, out_len);
    CHECK(out[0] == 0 && out[1] == 10 && out[3] == 2, "active version first");
    CHECK(memcmp(out + 14, v1, 10) == 0, "then version 1, unchanged");
    envelope_bytes_free(out, out_len);

    const char data[] = "a@b.example" "c@d.example" "\xff";
    size_t offsets[] = {0, 11, 22, 23};
    uint32_t statuses[3] = {99, 99, 99};
    size_t out_offsets[4];
    STATUS(envelope_blind_index_batch(client, S("users.email"), 3, (const uint8_t *)data, 23, offsets, NULL, 0,
                                      ENVELOPE_INDEX_BINARY, statuses, &out, &out_len, out_offsets),
           ENVELOPE_OK);
    CHECK(statuses[0] == ENVELOPE_OK && statuses[1] == ENVELOPE_OK && statuses[2] == ENVELOPE_MALFORMED,
          "per-item statuses %u %u %u", statuses[0], statuses[1], statuses[2]);
    CHECK(out_offsets[1] == 10 && out_offsets[2] == 20 && out_offsets[3] == 20, "offsets");
    CHECK(strstr(last_error(), "item 2") != NULL, "names the failed item: %s", last_error());
    envelope_bytes_free(out, out_len);

    STATUS(envelope_blind_index_check(client, S("users.email"), S("nfkc_casefold+trim_collapse"), 64), ENVELOPE_OK);
    STATUS(envelope_blind_index_check(client, S("users.email"), S("exact"), 0), ENVELOPE_INDEX_MISMATCH);
    STATUS(envelope_blind_index_check(client, S("nope"), S("exact"), 0), ENVELOPE_INDEX_NOT_FOUND);
    STATUS(envelope_blind_index_set_state(client, S("users.email"), 2, ENVELOPE_INDEX_RETIRED_STATE), ENVELOPE_INVALID_CONFIG);
    STATUS(envelope_blind_index_set_state(client, S("users.email"), 1, 9), ENVELOPE_INVALID_ARGUMENT);
    STATUS(envelope_blind_index_set_state(client, S("users.email"), 1, ENVELOPE_INDEX_RETIRED_STATE), ENVELOPE_OK);
    STATUS(envelope_blind_index_query_values(client, S("users.email"), S("a@b.example"), NULL, 0, ENVELOPE_INDEX_TEXT,
                                             &out, &out_len, &count),
           ENVELOPE_OK);
    CHECK(count == 1 && memcmp(out + 2, "bi2:", 4) == 0, "retired version left the window");
    envelope_bytes_free(out, out_len);

    STATUS(envelope_normalize(S("nfkc_casefold+digits"), S("\xef\xbc\x91-2"), &out, &out_len), ENVELOPE_OK);
    CHECK(out_len == 2 && memcmp(out, "12", 2) == 0, "normalize");
    envelope_bytes_free(out, out_len);
    STATUS(envelope_normalize(S("nfkc_casefold"), (const uint8_t *)"\xff", 1, &out, &out_len), ENVELOPE_MALFORMED);
    STATUS(envelope_normalize(S("lower"), S("x"), &out, &out_len), ENVELOPE_INVALID_CONFIG);
    STATUS(envelope_blind_index(NULL, S("i"), S("x"), NULL, 0, 0, &out, &out_len), ENVELOPE_NULL_ARGUMENT);
    envelope_client_free(client);
}

/* A checkpoint-signing key made once by `envelope audit keygen --name ffi-test` for this
 * test alone (its verifier key: ffi-test+55a3bce8+AdLKVD+cWB0LHZPSuMFqDK22Rti+L+zGWif+jb5EuC04). */
static const char TEST_SIGNING_KEY[] =
    "PRIVATE+KEY+ffi-test+55a3bce8+AcrOnQjGto/eSWSrckyBwyEL6O8D7d2bz6p+DWrp4IJ9\n";

static void write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0, "create %s", path);
    if (fd < 0) return;
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s", path);
    close(fd);
}

/* Every segment of a log directory, concatenated (at most `cap` bytes). */
static size_t read_log(const char *log_dir, char *buf, size_t cap) {
    size_t len = 0;
    DIR *d = opendir(log_dir);
    CHECK(d != NULL, "open %s", log_dir);
    if (d == NULL) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "audit-", 6) != 0) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", log_dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) continue;
        len += fread(buf + len, 1, cap - len, f);
        fclose(f);
    }
    closedir(d);
    return len;
}

/* The key-use log through `audit_json`: two clients share one writer; KMS calls, cache use,
 * checkpoints and the stop line reach the files when the last client is freed; bad options
 * are refused with what is wrong. */
static void test_audit(const char *dir) {
    char key_path[300], loose_path[300], log_dir[300], json[1200];
    snprintf(key_path, sizeof key_path, "%s/audit.key", dir);
    snprintf(loose_path, sizeof loose_path, "%s/loose.key", dir);
    snprintf(log_dir, sizeof log_dir, "%s/auditlog", dir);
    write_file(key_path, TEST_SIGNING_KEY, 0600);
    write_file(loose_path, TEST_SIGNING_KEY, 0644);
    struct envelope_client_options options;
    STATUS(envelope_client_options_default(&options), ENVELOPE_OK);
    CHECK(options.audit_json == NULL && options.audit_json_len == 0, "no key-use log by default");

    snprintf(json, sizeof json,
             "{\"dir\": \"%s\", \"signer\": \"%s\", \"actor\": \"c-test\", \"label\": \"c.column\"}", log_dir,
             key_path);
    options.audit_json = (const uint8_t *)json;
    options.audit_json_len = strlen(json);
    envelope_client *writer = new_client(&options);
    envelope_client *reader = new_client(&options);
    uint8_t *ct = NULL, *pt = NULL;
    size_t ct_len = 0, pt_len = 0;
    for (int i = 0; i < 10; i++) {
        STATUS(envelope_encrypt(writer, S("4111-1111"), S("c.column#1"), &ct, &ct_len), ENVELOPE_OK);
        STATUS(envelope_decrypt(reader, ct, ct_len, S("c.column#1"), &pt, &pt_len), ENVELOPE_OK);
        envelope_bytes_free(ct, ct_len);
        envelope_bytes_free(pt, pt_len);
    }
    envelope_client_free(writer);
    envelope_client_free(reader);
    static char log[1 << 16];
    size_t len = read_log(log_dir, log, sizeof log);
    CHECK(contains((uint8_t *)log, len, "\"op\":\"generate\""), "the generate call is logged");
    CHECK(contains((uint8_t *)log, len, "\"op\":\"unwrap\""), "the reader's unwrap is logged");
    CHECK(contains((uint8_t *)log, len, "\"label\":\"c.column\""), "events carry the label");
    CHECK(contains((uint8_t *)log, len, "\"actor\":\"c-test\""), "lines carry the actor");
    CHECK(contains((uint8_t *)log, len, "\"count\":10,"), "cache use counts the 10 encryptions");
    CHECK(contains((uint8_t *)log, len, "\"type\":\"stop\""), "the last client's free closes the log");
    CHECK(contains((uint8_t *)log, len, "\"type\":\"checkpoint\""), "a final checkpoint");
    CHECK(!contains((uint8_t *)log, len, "4111-1111"), "no plaintext in the log");

    snprintf(json, sizeof json, "{\"dir\": \"%s\"}", log_dir);
    options.audit_json_len = strlen(json);
    envelope_client *client = NULL;
    STATUS(envelope_client_new(S(uri), &options, &client), ENVELOPE_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "dir and signer") != NULL, "says what is missing: %s", last_error());
    snprintf(json, sizeof json, "{\"dir\": \"%s\", \"signer\": \"%s\"}", log_dir, loose_path);
    options.audit_json_len = strlen(json);
    STATUS(envelope_client_new(S(uri), &options, &client), ENVELOPE_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "chmod 600") != NULL, "refuses a readable key: %s", last_error());
    CHECK(strcmp(envelope_status_message(ENVELOPE_AUDIT_LOG_UNAVAILABLE), "") != 0, "the status has a message");
}

static envelope_client *shared;

static void *worker(void *arg) {
    long id = (long)arg;
    char aad[32];
    snprintf(aad, sizeof aad, "thread-%ld", id);
    for (int i = 0; i < 200; i++) {
        uint8_t *ct = NULL, *pt = NULL;
        size_t ct_len = 0, pt_len = 0;
        if (envelope_encrypt(shared, S("concurrent"), S(aad), &ct, &ct_len) != ENVELOPE_OK ||
            envelope_decrypt(shared, ct, ct_len, S(aad), &pt, &pt_len) != ENVELOPE_OK || pt_len != 10) {
            return (void *)1;
        }
        envelope_bytes_free(pt, pt_len);
        envelope_bytes_free(ct, ct_len);
    }
    return NULL;
}

static void test_threads(void) {
    shared = new_client(NULL);
    pthread_t threads[4];
    for (long i = 0; i < 4; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *result = NULL;
        pthread_join(threads[i], &result);
        CHECK(result == NULL, "thread %d", i);
    }
    envelope_client_free(shared);
}


/* Appends a library-owned buffer to `all` and frees it. */
static void append(uint8_t **all, size_t *all_len, uint8_t *part, size_t part_len) {
    *all = realloc(*all, *all_len + part_len + 1);
    if (part_len) memcpy(*all + *all_len, part, part_len);
    *all_len += part_len;
    envelope_bytes_free(part, part_len);
}

static void test_stream(void) {
    envelope_client *client = new_client(NULL);
    size_t len = 3 * 4096 * 5 + 1234;
    uint8_t *plain = malloc(len);
    for (size_t i = 0; i < len; i++) plain[i] = (uint8_t)(i * 7 + i / 4096);

    /* Encrypt in uneven pieces with two threads. */
    envelope_stream_encryptor *enc = NULL;
    STATUS(envelope_stream_encryptor_new(client, S("stream-aad"), 4096, 2, &enc), ENVELOPE_OK);
    uint8_t *stream = NULL, *part = NULL;
    size_t stream_len = 0, part_len = 0;
    for (size_t at = 0; at < len; at += 3001) {
        size_t n = len - at < 3001 ? len - at : 3001;
        STATUS(envelope_stream_encrypt_update(enc, plain + at, n, &part, &part_len), ENVELOPE_OK);
        append(&stream, &stream_len, part, part_len);
    }
    STATUS(envelope_stream_encrypt_finish(enc, &part, &part_len), ENVELOPE_OK);
    append(&stream, &stream_len, part, part_len);
    STATUS(envelope_stream_encrypt_finish(enc, &part, &part_len), ENVELOPE_INVALID_ARGUMENT);
    envelope_stream_encryptor_free(enc);
    CHECK(stream_len > len && stream[2] == 4, "a version 4 stream of %zu bytes", stream_len);

    size_t header_len = 0;
    STATUS(envelope_stream_header_len(stream, 10, &header_len), ENVELOPE_OK);
    STATUS(envelope_stream_header_len(stream, 5, &header_len), ENVELOPE_MALFORMED);
    STATUS(envelope_stream_header_len(stream, 10, &header_len), ENVELOPE_OK);

    /* Decrypt in pieces: exactly the plaintext. */
    envelope_stream_decryptor *dec = NULL;
    STATUS(envelope_stream_decryptor_new(client, stream, header_len, S("stream-aad"), 2, &dec), ENVELOPE_OK);
    uint8_t *out = NULL;
    size_t out_len = 0;
    for (size_t at = header_len; at < stream_len; at += 5000) {
        size_t n = stream_len - at < 5000 ? stream_len - at : 5000;
        STATUS(envelope_stream_decrypt_update(dec, stream + at, n, &part, &part_len), ENVELOPE_OK);
        append(&out, &out_len, part, part_len);
    }
    STATUS(envelope_stream_decrypt_finish(dec, &part, &part_len), ENVELOPE_OK);
    append(&out, &out_len, part, part_len);
    CHECK(out_len == len && memcmp(out, plain, len) == 0, "stream round trip (%zu bytes)", out_len);
    free(out);

    /* Random access: segment 3 alone, then the layout. */
    uint32_t segment_size = 0;
    size_t header2 = 0;
    uint64_t count = 0;
    STATUS(envelope_stream_decryptor_layout(dec, &segment_size, &header2), ENVELOPE_OK);
    STATUS(envelope_stream_segment_count(dec, stream_len, &count), ENVELOPE_OK);
    CHECK(segment_size == 4096 && header2 == header_len && count == 16, "layout %u %zu %llu",
          segment_size, header2, (unsigned long long)count);
    uint8_t seg[4096];
    size_t seg_len = 0;
    const uint8_t *third = stream + header_len + 3 * (4096 + 16);
    STATUS(envelope_stream_decrypt_segment(dec, 3, false, third, 4096 + 16, seg, sizeof seg, &seg_len), ENVELOPE_OK);
    CHECK(seg_len == 4096 && memcmp(seg, plain + 3 * 4096, 4096) == 0, "segment 3");
    STATUS(envelope_stream_decrypt_segment(dec, 4, false, third, 4096 + 16, seg, sizeof seg, &seg_len), ENVELOPE_DECRYPTION_FAILED);
    STATUS(envelope_stream_decrypt_segment(dec, 3, false, third, 4096 + 16, seg, 100, &seg_len), ENVELOPE_BUFFER_TOO_SMALL);
    CHECK(seg_len == 4096, "needed %zu", seg_len);
    STATUS(envelope_stream_segment_count(dec, header_len, &count), ENVELOPE_TRUNCATED);
    envelope_stream_decryptor_free(dec);

    /* Cut at a segment boundary: truncated, after the authentic segments. */
    STATUS(envelope_stream_decryptor_new(client, stream, stream_len, S("stream-aad"), 1, &dec), ENVELOPE_OK);
    size_t cut = header_len + 5 * (4096 + 16);
    STATUS(envelope_stream_decrypt_update(dec, stream + header_len, cut - header_len, &part, &part_len), ENVELOPE_OK);
    CHECK(part_len == 4 * 4096, "4 segments released before the end is known (%zu)", part_len);
    envelope_bytes_free(part, part_len);
    STATUS(envelope_stream_decrypt_finish(dec, &part, &part_len), ENVELOPE_TRUNCATED);
    CHECK(contains((const uint8_t *)last_error(), strlen(last_error()), "truncated"), "message");
    envelope_stream_decryptor_free(dec);

    /* Wrong AAD: nothing authenticates. */
    STATUS(envelope_stream_decryptor_new(client, stream, stream_len, S("other"), 1, &dec), ENVELOPE_OK);
    STATUS(envelope_stream_decrypt_update(dec, stream + header_len, stream_len - header_len, &part, &part_len),
           ENVELOPE_DECRYPTION_FAILED);
    STATUS(envelope_stream_decrypt_finish(dec, &part, &part_len), ENVELOPE_INVALID_ARGUMENT);
    envelope_stream_decryptor_free(dec);
    envelope_stream_encryptor_free(NULL);
    envelope_stream_decryptor_free(NULL);

    free(stream);
    free(plain);
    envelope_client_free(client);
}

int main(void) {
    char dir[] = "/tmp/envelope-ffi-test-XXXXXX";
    if (mkdtemp(dir) == NULL) return 2;
    snprintf(keyring_path, sizeof keyring_path, "%s/keyring.json", dir);
    snprintf(uri, sizeof uri, "local://%s", keyring_path);
    STATUS(envelope_local_keyring_create(S(keyring_path), S("default")), ENVELOPE_OK);
    STATUS(envelope_local_keyring_create(S(keyring_path), S("bad key id")), ENVELOPE_INVALID_CONFIG);

    test_basics();
    test_round_trips();
    test_threads();
    test_batches();
    test_rotation();
    test_stream();
    snprintf(store_uri, sizeof store_uri, "sqlite://%s/deks.sqlite", dir);
    test_compact();
    snprintf(index_store_uri, sizeof index_store_uri, "sqlite://%s/index.sqlite", dir);
    test_blind_index();
    test_audit(dir);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
