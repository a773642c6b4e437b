package dev.envelope;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.ByteByReference;
import com.sun.jna.ptr.LongByReference;
import com.sun.jna.ptr.PointerByReference;
import java.lang.ref.Cleaner;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Envelope encryption under one KEK, named by a key URI ({@code local:///path/keyring.json#KEY},
 * {@code aws-kms://arn:aws:kms:…}, {@code gcp-kms://projects/…}, {@code vault://HOST:PORT/MOUNT/keys/NAME}).
 *
 * <p>The client caches data keys (see {@link Options}), is safe to share between threads, and
 * should be closed (or used in try-with-resources) so that its cached keys are zeroized at once;
 * one left unclosed is freed when it becomes unreachable. Every failure is an {@link
 * EnvelopeException} subclass named after the C ABI's status.
 */
public final class EnvelopeClient implements AutoCloseable {
  private static final Cleaner CLEANER = Cleaner.create();
  private static final int SIZE_T = 8;

  private final String keyUri;
  private final Handle handle;
  private final Cleaner.Cleanable cleanable;

  /** The native client, freed once. */
  private static final class Handle implements Runnable {
    private volatile Pointer ptr;

    Handle(Pointer ptr) {
      this.ptr = ptr;
    }

    @Override
    public synchronized void run() {
      Pointer p = ptr;
      ptr = null;
      if (p != null) {
        NativeLibrary.Holder.LIB.envelope_client_free(p);
      }
    }
  }

  /** A client with the default options (AES-256-GCM, the SDK's cache defaults). */
  public EnvelopeClient(String keyUri) {
    this(keyUri, Options.defaults());
  }

  /** A client with these options. Makes no KMS call. */
  public EnvelopeClient(String keyUri, Options options) {
    this.keyUri = Objects.requireNonNull(keyUri, "keyUri");
    NativeLibrary.Options nativeOptions = options.toNative();
    byte[] uri = keyUri.getBytes(StandardCharsets.UTF_8);
    PointerByReference out = new PointerByReference();
    NativeLibrary.Holder.check(lib().envelope_client_new(uri, uri.length, nativeOptions, out));
    this.handle = new Handle(out.getValue());
    this.cleanable = CLEANER.register(this, handle);
  }

  private static NativeLibrary lib() {
    return NativeLibrary.Holder.LIB;
  }

  private Pointer ptr() {
    Pointer p = handle.ptr;
    if (p == null) {
      throw new IllegalStateException("the envelope client is closed");
    }
    return p;
  }

  /** The key URI. */
  public String keyUri() {
    return keyUri;
  }

  /** Encrypts {@code plaintext} bound to {@code aad} (may be empty) into the binary form. */
  public byte[] encrypt(byte[] plaintext, byte[] aad) {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(
        lib().envelope_encrypt(ptr(), plaintext, plaintext.length, aad, aad.length, out, len));
    return NativeLibrary.Holder.take(out, len);
  }

  /** Encrypts into the text form ({@code ev1:} + base64url), for text columns and JSON. */
  public String encryptText(byte[] plaintext, byte[] aad) {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(
        lib().envelope_encrypt_text(ptr(), plaintext, plaintext.length, aad, aad.length, out, len));
    return new String(NativeLibrary.Holder.take(out, len), StandardCharsets.US_ASCII);
  }

  /** Decrypts a binary ciphertext; {@code aad} must be the encryption's. */
  public byte[] decrypt(byte[] ciphertext, byte[] aad) {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(
        lib().envelope_decrypt(ptr(), ciphertext, ciphertext.length, aad, aad.length, out, len));
    return NativeLibrary.Holder.take(out, len);
  }

  /** Decrypts a text-form ciphertext. */
  public byte[] decryptText(String ciphertext, byte[] aad) {
    byte[] text = ciphertext.getBytes(StandardCharsets.UTF_8);
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(
        lib().envelope_decrypt_text(ptr(), text, text.length, aad, aad.length, out, len));
    return NativeLibrary.Holder.take(out, len);
  }

  /** Decrypts and encrypts again under a new data key (after a suspected exposure). */
  public byte[] reencrypt(byte[] ciphertext, byte[] aad) {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(
        lib().envelope_reencrypt(ptr(), ciphertext, ciphertext.length, aad, aad.length, out, len));
    return NativeLibrary.Holder.take(out, len);
  }

  /** The result of a rewrap: the ciphertext under the KEK's current version, and whether it changed. */
  public record Rewrapped<T>(T ciphertext, boolean changed) {}

  /** Moves a binary ciphertext to the KEK's current version, header only. */
  public Rewrapped<byte[]> rewrap(byte[] ciphertext) {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    ByteByReference changed = new ByteByReference();
    NativeLibrary.Holder.check(
        lib().envelope_rewrap(ptr(), ciphertext, ciphertext.length, out, len, changed));
    return new Rewrapped<>(NativeLibrary.Holder.take(out, len), changed.getValue() != 0);
  }

  /** Moves a text-form ciphertext to the KEK's current version, header only. */
  public Rewrapped<String> rewrapText(String ciphertext) {
    Rewrapped<byte[]> r = rewrap(ciphertext.getBytes(StandardCharsets.US_ASCII));
    return new Rewrapped<>(new String(r.ciphertext(), StandardCharsets.US_ASCII), r.changed());
  }

  /**
   * Encrypts many values in one native call, every one bound to {@code aad}. Fails with the
   * first failed item's exception (a batch of plaintexts fails only as a whole: a KMS error).
   */
  public List<byte[]> encryptBatch(List<byte[]> plaintexts, byte[] aad) {
    return batch(true, plaintexts, aad);
  }

  /** Decrypts many binary ciphertexts in one native call, every one bound to {@code aad}. */
  public List<byte[]> decryptBatch(List<byte[]> ciphertexts, byte[] aad) {
    return batch(false, ciphertexts, aad);
  }

  private List<byte[]> batch(boolean encrypt, List<byte[]> items, byte[] aad) {
    int count = items.size();
    if (count == 0) {
      return new ArrayList<>();
    }
    long total = 0;
    for (byte[] item : items) {
      total += item.length;
    }
    Memory data = new Memory(Math.max(1, total));
    Memory offsets = new Memory((long) (count + 1) * SIZE_T);
    long at = 0;
    for (int i = 0; i < count; i++) {
      byte[] item = items.get(i);
      offsets.setLong((long) i * SIZE_T, at);
      data.write(at, item, 0, item.length);
      at += item.length;
    }
    offsets.setLong((long) count * SIZE_T, at);
    Memory aadMem = NativeLibrary.Holder.memory(aad);
    Memory statuses = new Memory((long) count * 4);
    Memory outOffsets = new Memory((long) (count + 1) * SIZE_T);
    PointerByReference out = new PointerByReference();
    LongByReference outLen = new LongByReference();
    int status =
        encrypt
            ? lib().envelope_encrypt_batch(ptr(), count, data, total, offsets, aadMem, aad.length,
                null, statuses, out, outLen, outOffsets)
            : lib().envelope_decrypt_batch(ptr(), count, data, total, offsets, aadMem, aad.length,
                null, statuses, out, outLen, outOffsets);
    NativeLibrary.Holder.check(status);
    String firstError = null;
    int firstStatus = 0;
    for (int i = 0; i < count && firstStatus == 0; i++) {
      int s = statuses.getInt((long) i * 4);
      if (s != 0) {
        firstStatus = s;
        firstError = "item " + i + ": " + NativeLibrary.Holder.lastError(s);
      }
    }
    byte[] all = NativeLibrary.Holder.take(out, outLen);
    if (firstStatus != 0) {
      throw EnvelopeException.of(firstStatus, firstError);
    }
    List<byte[]> result = new ArrayList<>(count);
    for (int i = 0; i < count; i++) {
      int from = Math.toIntExact(outOffsets.getLong((long) i * SIZE_T));
      int to = Math.toIntExact(outOffsets.getLong((long) (i + 1) * SIZE_T));
      byte[] item = new byte[to - from];
      System.arraycopy(all, from, item, 0, item.length);
      result.add(item);
    }
    return result;
  }

  /** Header facts of a ciphertext (binary or text form) without any key: suite, KMS, key, version. */
  public static HeaderInfo inspect(byte[] ciphertext) {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(
        NativeLibrary.Holder.LIB.envelope_inspect_json(ciphertext, ciphertext.length, out, len));
    return HeaderInfo.parse(new String(NativeLibrary.Holder.take(out, len), StandardCharsets.UTF_8));
  }

  /** Header facts of a text-form ciphertext. */
  public static HeaderInfo inspect(String ciphertext) {
    return inspect(ciphertext.getBytes(StandardCharsets.US_ASCII));
  }

  /** The client's counters as JSON: KMS calls by operation, cache hits and misses, DEKs created. */
  public String statsJson() {
    PointerByReference out = new PointerByReference();
    LongByReference len = new LongByReference();
    NativeLibrary.Holder.check(lib().envelope_client_stats_json(ptr(), out, len));
    return new String(NativeLibrary.Holder.take(out, len), StandardCharsets.UTF_8);
  }

  /** The native library's version. */
  public static String nativeVersion() {
    return NativeLibrary.Holder.LIB.envelope_version();
  }

  /** The crypto provider running AES-256-GCM ({@code aws-lc-rs} or {@code rustcrypto}). */
  public static String cryptoProvider() {
    return NativeLibrary.Holder.LIB.envelope_crypto_provider();
  }

  /** Releases the native client and zeroizes its cached keys. Idempotent. */
  @Override
  public void close() {
    cleanable.clean();
  }

  @Override
  public String toString() {
    return "EnvelopeClient(" + keyUri + ")";
  }
}
