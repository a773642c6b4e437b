package dev.envelope.parquet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.envelope.EnvelopeClient;
import dev.envelope.LocalKeyring;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.ParquetCryptoRuntimeException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EnvelopeKmsClientTest {
  @TempDir Path dir;
  private String uri;
  private EnvelopeKmsClient kms;

  @BeforeEach
  void setUp() {
    Path keyring = dir.resolve("keyring.json");
    LocalKeyring.create(keyring, "pii");
    uri = "local://" + keyring + "#pii";
    Configuration conf = new Configuration(false);
    conf.set("envelope.parquet.key.pii", uri);
    conf.set("envelope.parquet.key.also-pii", uri);
    kms = new EnvelopeKmsClient();
    kms.initialize(conf, "DEFAULT", "DEFAULT", "DEFAULT");
  }

  @AfterEach
  void tearDown() {
    EnvelopeKmsClient.closeClients();
  }

  @Test
  void wrapsDataKeysAsEnvelopeCiphertextsBoundToTheMasterKey() {
    byte[] key = new byte[32];
    Arrays.fill(key, (byte) 7);
    String wrapped = kms.wrapKey(key, "pii");
    assertTrue(wrapped.startsWith("ev1:"), wrapped);
    assertEquals("1", EnvelopeClient.inspect(wrapped).keyVersion());
    assertEquals("pii", EnvelopeClient.inspect(wrapped).keyId());
    assertArrayEquals(key, kms.unwrapKey(wrapped, "pii"));
    // The same KEK under another master key id: the AAD differs, the unwrap fails.
    ParquetCryptoRuntimeException e =
        assertThrows(ParquetCryptoRuntimeException.class, () -> kms.unwrapKey(wrapped, "also-pii"));
    assertTrue(e.getMessage().contains("could not unwrap"), e.getMessage());
    // A master key id that is a key URI needs no mapping.
    assertArrayEquals(key, kms.unwrapKey(kms.wrapKey(key, uri), uri));
    // One KMS call wrapped all of these keys.
    assertTrue(EnvelopeKmsClient.clientFor(uri).statsJson().contains("\"kms_generate_calls\":1"));
  }

  @Test
  void weakSettingsForeignMaterialAndUnknownKeysAreRefused() {
    ParquetCryptoRuntimeException shortKey =
        assertThrows(ParquetCryptoRuntimeException.class, () -> kms.wrapKey(new byte[16], "pii"));
    assertTrue(shortKey.getMessage().contains("256-bit data keys only"), shortKey.getMessage());
    ParquetCryptoRuntimeException foreign =
        assertThrows(ParquetCryptoRuntimeException.class, () -> kms.unwrapKey("AAECAwQ=", "pii"));
    assertTrue(foreign.getMessage().contains("another KMS client"), foreign.getMessage());
    ParquetCryptoRuntimeException unknown =
        assertThrows(ParquetCryptoRuntimeException.class, () -> kms.wrapKey(new byte[32], "footer"));
    assertTrue(unknown.getMessage().contains("envelope.parquet.key.footer"), unknown.getMessage());
  }
}
