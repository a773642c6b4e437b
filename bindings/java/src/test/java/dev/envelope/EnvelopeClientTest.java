package dev.envelope;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EnvelopeClientTest {
  private static final byte[] AAD = "users.ssn".getBytes(StandardCharsets.UTF_8);

  @TempDir Path dir;
  private Path keyring;
  private String uri;

  @BeforeEach
  void keyring() {
    keyring = dir.resolve("keyring.json");
    LocalKeyring.create(keyring, "default");
    uri = "local://" + keyring + "#default";
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void encryptsAndDecryptsBothForms() {
    try (EnvelopeClient client = new EnvelopeClient(uri)) {
      byte[] ct = client.encrypt(utf8("123-45-6789"), AAD);
      assertArrayEquals(utf8("123-45-6789"), client.decrypt(ct, AAD));
      String text = client.encryptText(utf8("123-45-6789"), AAD);
      assertTrue(text.startsWith("ev1:"), text);
      assertArrayEquals(utf8("123-45-6789"), client.decryptText(text, AAD));
      assertArrayEquals(new byte[0], client.decrypt(client.encrypt(new byte[0], new byte[0]), new byte[0]));
      HeaderInfo info = EnvelopeClient.inspect(ct);
      assertEquals(1, info.formatVersion());
      assertEquals("AES-256-GCM", info.suite());
      assertEquals("local", info.provider());
      assertEquals("default", info.keyId());
      assertEquals("1", info.keyVersion());
      assertEquals(ct.length - 11, info.overhead());
      assertEquals(info, EnvelopeClient.inspect(text));
    }
  }

  @Test
  void badInputGetsTypedExceptions() {
    try (EnvelopeClient client = new EnvelopeClient(uri)) {
      byte[] ct = client.encrypt(utf8("secret"), AAD);
      assertThrows(EnvelopeException.DecryptionFailed.class, () -> client.decrypt(ct, utf8("other")));
      byte[] flipped = ct.clone();
      flipped[flipped.length - 1] ^= 1;
      assertThrows(EnvelopeException.DecryptionFailed.class, () -> client.decrypt(flipped, AAD));
      EnvelopeException cut =
          assertThrows(EnvelopeException.MalformedCiphertext.class,
              () -> client.decrypt(Arrays.copyOf(ct, 10), AAD));
      assertEquals(101, cut.code());
      assertFalse(cut.isRetryable());
      byte[] future = ct.clone();
      future[2] = 9;
      assertThrows(EnvelopeException.UnsupportedFormatVersion.class, () -> client.decrypt(future, AAD));
      assertThrows(EnvelopeException.InvalidKeyUri.class, () -> new EnvelopeClient("nope://x"));
    }
  }

  @Test
  void rewrapMovesTheHeaderOnlyAndDestroyedVersionsStayDestroyed() {
    byte[] ct;
    try (EnvelopeClient client = new EnvelopeClient(uri)) {
      ct = client.encrypt(utf8("row 1"), AAD);
    }
    assertEquals(2, LocalKeyring.rotate(keyring, "default"));
    try (EnvelopeClient client = new EnvelopeClient(uri)) {
      EnvelopeClient.Rewrapped<byte[]> r = client.rewrap(ct);
      assertTrue(r.changed());
      assertEquals("2", EnvelopeClient.inspect(r.ciphertext()).keyVersion());
      int header = (int) EnvelopeClient.inspect(ct).headerLength();
      int newHeader = (int) EnvelopeClient.inspect(r.ciphertext()).headerLength();
      assertArrayEquals(
          Arrays.copyOfRange(ct, header, ct.length),
          Arrays.copyOfRange(r.ciphertext(), newHeader, r.ciphertext().length));
      assertFalse(client.rewrap(r.ciphertext()).changed());
      LocalKeyring.destroyVersion(keyring, "default", 1);
      assertArrayEquals(utf8("row 1"), client.decrypt(r.ciphertext(), AAD));
    }
    try (EnvelopeClient fresh = new EnvelopeClient(uri)) {
      assertThrows(EnvelopeException.KeyVersionDestroyed.class, () -> fresh.decrypt(ct, AAD));
    }
  }

  @Test
  void batchesRoundTripAndNameTheFailedItem() {
    try (EnvelopeClient client = new EnvelopeClient(uri)) {
      List<byte[]> plain = List.of(utf8("a"), utf8(""), utf8("ccc"));
      List<byte[]> cts = client.encryptBatch(plain, AAD);
      assertEquals(3, cts.size());
      List<byte[]> back = client.decryptBatch(cts, AAD);
      for (int i = 0; i < plain.size(); i++) {
        assertArrayEquals(plain.get(i), back.get(i));
      }
      byte[] bad = cts.get(1).clone();
      bad[bad.length - 1] ^= 1;
      EnvelopeException e =
          assertThrows(EnvelopeException.DecryptionFailed.class,
              () -> client.decryptBatch(List.of(cts.get(0), bad), AAD));
      assertTrue(e.getMessage().startsWith("item 1"), e.getMessage());
      assertTrue(client.encryptBatch(List.of(), AAD).isEmpty());
    }
  }

  @Test
  void optionsReachTheLibrary() {
    // The suite, the cache switch and the DEK store sit at different offsets of the C struct.
    try (EnvelopeClient chacha = new EnvelopeClient(uri, Options.defaults().suite("XChaCha20-Poly1305"))) {
      assertEquals("XChaCha20-Poly1305", EnvelopeClient.inspect(chacha.encrypt(utf8("x"), AAD)).suite());
    }
    try (EnvelopeClient uncached = new EnvelopeClient(uri, Options.defaults().cache(false))) {
      uncached.encrypt(utf8("x"), AAD);
      uncached.encrypt(utf8("y"), AAD);
      assertTrue(uncached.statsJson().contains("\"kms_generate_calls\":2"), uncached.statsJson());
    }
    String store = "sqlite://" + dir.resolve("deks.sqlite");
    try (EnvelopeClient compact = new EnvelopeClient(uri, Options.defaults().dekStore(store))) {
      byte[] ct = compact.encrypt(utf8("12345678901"), AAD);
      assertEquals(83, ct.length);
      assertEquals(3, EnvelopeClient.inspect(ct).formatVersion());
      assertArrayEquals(utf8("12345678901"), compact.decrypt(ct, AAD));
    }
    assertThrows(EnvelopeException.InvalidArgument.class, () -> Options.defaults().suite("AES-128"));
  }

  @Test
  void aClosedClientIsRefusedAndClosingTwiceIsHarmless() {
    EnvelopeClient client = new EnvelopeClient(uri);
    client.close();
    client.close();
    assertThrows(IllegalStateException.class, () -> client.encrypt(utf8("x"), AAD));
    assertNotEquals("", EnvelopeClient.nativeVersion());
    assertTrue(List.of("aws-lc-rs", "rustcrypto").contains(EnvelopeClient.cryptoProvider()));
  }

  @Test
  void statusCodesMapToTheirExceptions() {
    for (EnvelopeException.Status s : EnvelopeException.Status.values()) {
      if (s == EnvelopeException.Status.UNKNOWN) {
        continue;
      }
      EnvelopeException e = EnvelopeException.of(s.code(), "m");
      assertEquals(s, e.status());
      assertNotEquals(EnvelopeException.class, e.getClass(), s.name());
    }
    EnvelopeException unknown = EnvelopeException.of(12345, "m");
    assertEquals(EnvelopeException.Status.UNKNOWN, unknown.status());
    assertEquals(12345, unknown.code());
    assertTrue(EnvelopeException.of(300, "m").isRetryable());
  }
}
