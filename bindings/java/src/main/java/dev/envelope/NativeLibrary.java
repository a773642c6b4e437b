package dev.envelope;

import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.ByteByReference;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.LongByReference;
import com.sun.jna.ptr.PointerByReference;
import java.nio.charset.StandardCharsets;

/**
 * The C ABI ({@code envelope.h}) as JNA sees it. {@code size_t} is a Java {@code long}: the
 * library is built for 64-bit targets only, which {@link #load} checks.
 */
interface NativeLibrary extends Library {
  /** The library: {@code envelope.library} (system property), else {@code ENVELOPE_FFI_LIB}, else
   * the copy bundled in the jar ({@code linux-x86-64/libenvelope_ffi.so}) or JNA's search path. */
  static NativeLibrary load() {
    if (Native.SIZE_T_SIZE != 8) {
      throw new UnsupportedOperationException("envelope's Java binding needs a 64-bit JVM");
    }
    String path = System.getProperty("envelope.library");
    if (path == null || path.isEmpty()) {
      path = System.getenv("ENVELOPE_FFI_LIB");
    }
    return Native.load(path == null || path.isEmpty() ? "envelope_ffi" : path, NativeLibrary.class);
  }

  /** {@code envelope_client_options}, field for field. */
  @Structure.FieldOrder({
    "suite", "cacheEnabled", "maxAgeMs", "maxMessages", "maxBytes", "decryptTtlMs",
    "decryptCapacity", "encryptionContextJson", "encryptionContextJsonLen", "negativeTtlMs",
    "maxUnwrapsPerSecond", "dekStoreUri", "dekStoreUriLen", "compactVersion", "refuseCompactV2",
    "indexStoreUri", "indexStoreUriLen", "auditJson", "auditJsonLen"
  })
  class Options extends Structure {
    public int suite;
    public byte cacheEnabled;
    public long maxAgeMs;
    public long maxMessages;
    public long maxBytes;
    public long decryptTtlMs;
    public long decryptCapacity;
    public Pointer encryptionContextJson;
    public long encryptionContextJsonLen;
    public long negativeTtlMs;
    public int maxUnwrapsPerSecond;
    public Pointer dekStoreUri;
    public long dekStoreUriLen;
    public int compactVersion;
    public byte refuseCompactV2;
    public Pointer indexStoreUri;
    public long indexStoreUriLen;
    public Pointer auditJson;
    public long auditJsonLen;
  }

  int envelope_client_options_default(Options out);

  int envelope_client_new(byte[] keyUri, long keyUriLen, Options options, PointerByReference out);

  void envelope_client_free(Pointer client);

  int envelope_client_stats_json(Pointer client, PointerByReference out, LongByReference outLen);

  int envelope_encrypt(Pointer client, byte[] plaintext, long plaintextLen, byte[] aad, long aadLen,
      PointerByReference out, LongByReference outLen);

  int envelope_encrypt_text(Pointer client, byte[] plaintext, long plaintextLen, byte[] aad,
      long aadLen, PointerByReference out, LongByReference outLen);

  int envelope_decrypt(Pointer client, byte[] ciphertext, long ciphertextLen, byte[] aad,
      long aadLen, PointerByReference out, LongByReference outLen);

  int envelope_decrypt_text(Pointer client, byte[] text, long textLen, byte[] aad, long aadLen,
      PointerByReference out, LongByReference outLen);

  int envelope_reencrypt(Pointer client, byte[] ciphertext, long ciphertextLen, byte[] aad,
      long aadLen, PointerByReference out, LongByReference outLen);

  int envelope_rewrap(Pointer client, byte[] ciphertext, long ciphertextLen,
      PointerByReference out, LongByReference outLen, ByteByReference changed);

  int envelope_encrypt_batch(Pointer client, long count, Pointer data, long dataLen,
      Pointer dataOffsets, Pointer aad, long aadLen, Pointer aadOffsets, Pointer statuses,
      PointerByReference out, LongByReference outLen, Pointer outOffsets);

  int envelope_decrypt_batch(Pointer client, long count, Pointer data, long dataLen,
      Pointer dataOffsets, Pointer aad, long aadLen, Pointer aadOffsets, Pointer statuses,
      PointerByReference out, LongByReference outLen, Pointer outOffsets);

  int envelope_inspect_json(byte[] ciphertext, long ciphertextLen, PointerByReference out,
      LongByReference outLen);

  void envelope_bytes_free(Pointer ptr, long len);

  int envelope_local_keyring_create(byte[] path, long pathLen, byte[] keyId, long keyIdLen);

  int envelope_local_keyring_rotate(byte[] path, long pathLen, byte[] keyId, long keyIdLen,
      IntByReference newVersion);

  int envelope_local_keyring_destroy_version(byte[] path, long pathLen, byte[] keyId,
      long keyIdLen, int version);

  String envelope_version();

  String envelope_crypto_provider();

  int envelope_fips_mode();

  String envelope_status_message(int status);

  int envelope_last_error_message(byte[] buf, long bufLen, LongByReference outLen);

  /** The library, loaded once. */
  final class Holder {
    static final NativeLibrary LIB = NativeLibrary.load();

    private Holder() {}

    /** Throws the typed exception for a status other than {@code ENVELOPE_OK}. */
    static void check(int status) {
      if (status != 0) {
        throw EnvelopeException.of(status, lastError(status));
      }
    }

    /** The calling thread's last error message, or the status's description. */
    static String lastError(int status) {
      byte[] buf = new byte[1024];
      LongByReference len = new LongByReference();
      if (LIB.envelope_last_error_message(buf, buf.length, len) == 0 && len.getValue() > 0) {
        int n = (int) Math.min(len.getValue(), buf.length - 1);
        return new String(buf, 0, n, StandardCharsets.UTF_8);
      }
      return LIB.envelope_status_message(status);
    }

    /** Copies and frees a buffer the library returned. */
    static byte[] take(PointerByReference out, LongByReference len) {
      Pointer p = out.getValue();
      long n = len.getValue();
      if (p == null) {
        return new byte[0];
      }
      try {
        return p.getByteArray(0, Math.toIntExact(n));
      } finally {
        LIB.envelope_bytes_free(p, n);
      }
    }

    /** Native memory holding {@code bytes} (at least one byte, so never a NULL pointer). */
    static Memory memory(byte[] bytes) {
      Memory m = new Memory(Math.max(1, bytes.length));
      m.write(0, bytes, 0, bytes.length);
      return m;
    }
  }
}
