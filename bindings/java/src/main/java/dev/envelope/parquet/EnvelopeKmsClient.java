package dev.envelope.parquet;

import dev.envelope.EnvelopeClient;
import dev.envelope.EnvelopeException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.ParquetCryptoRuntimeException;
import org.apache.parquet.crypto.keytools.KmsClient;

/**
 * envelope as the KMS of Parquet modular encryption in parquet-java and Spark
 * ({@code parquet.encryption.kms.client.class=dev.envelope.parquet.EnvelopeKmsClient}).
 *
 * <p>Master key ids are envelope key URIs, or names mapped to them with Hadoop properties
 * {@code envelope.parquet.key.NAME=URI} ({@code spark.hadoop.envelope.parquet.key.NAME} in
 * Spark). Each Parquet data key is wrapped as an envelope ciphertext in text form, bound (as
 * AAD) to {@code envelope.parquet.v1:} and the master key id: the same key material as
 * Python's {@code envelope_sdk.parquet}, so each reads the other's files and {@code envelope
 * rewrap --parquet DIR} rotates them. Data keys must be 256 bits ({@code
 * parquet.encryption.data.key.length.bits=256}) with single wrapping ({@code
 * parquet.encryption.double.wrapping=false}): double wrapping's key-encryption key is AES-128.
 *
 * <p>One {@link EnvelopeClient} per key URI serves every KMS client of the JVM (an executor's
 * tasks share its data-key cache).
 */
public final class EnvelopeKmsClient implements KmsClient {
  /** The AAD of each wrapped key: this prefix, then the master key id (UTF-8). */
  public static final String AAD_PREFIX = "envelope.parquet.v1:";

  /** The Hadoop property prefix mapping a master key id to a key URI. */
  public static final String KEY_PROPERTY_PREFIX = "envelope.parquet.key.";

  /** The data-key length this client wraps, in bytes (AES-256). */
  public static final int DATA_KEY_BYTES = 32;

  private static final Map<String, EnvelopeClient> CLIENTS = new ConcurrentHashMap<>();

  private final Map<String, String> keyUris = new ConcurrentHashMap<>();

  /** A client; parquet-java calls {@link #initialize} before any wrap. */
  public EnvelopeKmsClient() {}

  @Override
  public void initialize(
      Configuration configuration, String kmsInstanceID, String kmsInstanceURL, String accessToken) {
    if (configuration != null) {
      for (Map.Entry<String, String> e : configuration.getPropsWithPrefix(KEY_PROPERTY_PREFIX).entrySet()) {
        keyUris.put(e.getKey(), e.getValue());
      }
    }
  }

  /** Maps a master key id to a key URI (what {@code envelope.parquet.key.NAME} does). */
  public EnvelopeKmsClient withKey(String masterKeyId, String keyUri) {
    keyUris.put(masterKeyId, keyUri);
    return this;
  }

  /** The JVM's shared client for a key URI. */
  public static EnvelopeClient clientFor(String keyUri) {
    return CLIENTS.computeIfAbsent(keyUri, EnvelopeClient::new);
  }

  /** Closes the JVM's shared clients (their cached data keys are zeroized). */
  public static void closeClients() {
    for (String uri : CLIENTS.keySet()) {
      EnvelopeClient c = CLIENTS.remove(uri);
      if (c != null) {
        c.close();
      }
    }
  }

  private String resolve(String masterKeyId) {
    String uri = keyUris.get(masterKeyId);
    if (uri != null) {
      return uri;
    }
    for (String scheme : new String[] {"local://", "aws-kms://", "gcp-kms://", "vault://"}) {
      if (masterKeyId.startsWith(scheme)) {
        return masterKeyId;
      }
    }
    throw new ParquetCryptoRuntimeException(
        "master key id '" + masterKeyId + "' is not an envelope key URI and no "
            + KEY_PROPERTY_PREFIX + masterKeyId + " property maps it to one");
  }

  private static byte[] aad(String masterKeyId) {
    return (AAD_PREFIX + masterKeyId).getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public String wrapKey(byte[] keyBytes, String masterKeyIdentifier) throws KeyAccessDeniedException {
    if (keyBytes.length != DATA_KEY_BYTES) {
      throw new ParquetCryptoRuntimeException(
          "Parquet handed envelope a " + keyBytes.length + "-byte key to wrap: envelope wraps "
              + "256-bit data keys only. Set parquet.encryption.data.key.length.bits=256 and "
              + "parquet.encryption.double.wrapping=false (double wrapping's key-encryption key is AES-128)");
    }
    try {
      return clientFor(resolve(masterKeyIdentifier)).encryptText(keyBytes, aad(masterKeyIdentifier));
    } catch (EnvelopeException e) {
      throw translate("wrap", masterKeyIdentifier, e);
    }
  }

  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) throws KeyAccessDeniedException {
    if (!wrappedKey.startsWith("ev")) {
      throw new ParquetCryptoRuntimeException(
          "the key material of master key '" + masterKeyIdentifier + "' was not written by envelope "
              + "(a wrapped key is an ev1: ciphertext): another KMS client wrote this file");
    }
    byte[] key;
    try {
      key = clientFor(resolve(masterKeyIdentifier)).decryptText(wrappedKey, aad(masterKeyIdentifier));
    } catch (EnvelopeException e) {
      throw translate("unwrap", masterKeyIdentifier, e);
    }
    if (key.length != DATA_KEY_BYTES) {
      throw new ParquetCryptoRuntimeException(
          "a wrapped Parquet data key of " + key.length + " bytes: expected " + DATA_KEY_BYTES);
    }
    return key;
  }

  /** Denied access is parquet-java's {@link KeyAccessDeniedException}; the rest keep their type as the cause. */
  private static RuntimeException translate(String op, String masterKeyId, EnvelopeException e) {
    String message = "envelope could not " + op + " a key of master key '" + masterKeyId + "': " + e.getMessage();
    if (e.status() == EnvelopeException.Status.PERMISSION_DENIED) {
      KeyAccessDeniedException denied = new KeyAccessDeniedException(message);
      denied.initCause(e);
      return denied;
    }
    return new ParquetCryptoRuntimeException(message, e);
  }
}
