/* A C program outside the repository: built with
 *   cc roundtrip.c $(pkg-config --cflags --libs envelope)
 * it creates a keyring, encrypts a field, decrypts it and checks the version. */
#include <envelope.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s KEYRING_PATH EXPECTED_VERSION\n", argv[0]);
        return 2;
    }
    if (strcmp(envelope_version(), argv[2]) != 0) {
        fprintf(stderr, "library version %s, expected %s\n", envelope_version(), argv[2]);
        return 1;
    }
    const char *path = argv[1];
    if (envelope_local_keyring_create((const uint8_t *)path, strlen(path), (const uint8_t *)"default", 7) != ENVELOPE_OK) {
        fprintf(stderr, "keyring: %s\n", envelope_status_message(ENVELOPE_KEYRING_ERROR));
        return 1;
    }
    char uri[4096];
    snprintf(uri, sizeof uri, "local://%s", path);
    struct envelope_client *client = NULL;
    if (envelope_client_new((const uint8_t *)uri, strlen(uri), NULL, &client) != ENVELOPE_OK) {
        return 1;
    }
    const char *aad = "patients.ssn#42";
    uint8_t ct[512], pt[512];
    size_t ct_len = 0, pt_len = 0;
    if (envelope_encrypt_into(client, (const uint8_t *)"123-45-6789", 11, (const uint8_t *)aad, strlen(aad), ct, sizeof ct, &ct_len) != ENVELOPE_OK ||
        envelope_decrypt_into(client, ct, ct_len, (const uint8_t *)aad, strlen(aad), pt, sizeof pt, &pt_len) != ENVELOPE_OK ||
        pt_len != 11 || memcmp(pt, "123-45-6789", 11) != 0) {
        fprintf(stderr, "round trip failed\n");
        envelope_client_free(client);
        return 1;
    }
    envelope_client_free(client);
    printf("round trip ok: %zu-byte ciphertext, library %s on %s\n", ct_len, envelope_version(), envelope_crypto_provider());
    return 0;
}
