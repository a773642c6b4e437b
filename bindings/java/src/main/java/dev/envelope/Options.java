package dev.envelope;

import com.sun.jna.Memory;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * Client options: start from {@link #defaults()} and change what you need. Unset values keep
 * the SDK's defaults (AES-256-GCM, the data-key cache on with its default limits).
 */
public final class Options {
  private String suite = "AES-256-GCM";
  private Boolean cache;
  private Duration maxAge;
  private Long maxMessages;
  private Long maxBytes;
  private Duration decryptTtl;
  private Long decryptCapacity;
  private Duration negativeTtl;
  private Integer maxUnwrapsPerSecond;
  private String dekStore;
  private String indexStore;

  private Options() {}

  /** The defaults. */
  public static Options defaults() {
    return new Options();
  }

  /** {@code AES-256-GCM} (the default) or {@code XChaCha20-Poly1305}. */
  public Options suite(String suite) {
    if (!suite.equals("AES-256-GCM") && !suite.equals("XChaCha20-Poly1305")) {
      throw new EnvelopeException.InvalidArgument(
          "unknown suite " + suite + ": expected AES-256-GCM or XChaCha20-Poly1305");
    }
    this.suite = suite;
    return this;
  }

  /** Whether data keys are cached ({@code false} calls the KMS for every value). */
  public Options cache(boolean enabled) {
    this.cache = enabled;
    return this;
  }

  /** How long one data key encrypts (bounds how soon a KEK rotation is picked up). */
  public Options maxAge(Duration maxAge) {
    this.maxAge = maxAge;
    return this;
  }

  /** How many messages one data key encrypts. */
  public Options maxMessages(long maxMessages) {
    this.maxMessages = maxMessages;
    return this;
  }

  /** How many plaintext bytes one data key encrypts. */
  public Options maxBytes(long maxBytes) {
    this.maxBytes = maxBytes;
    return this;
  }

  /** How long an unwrapped data key is kept for decryption. */
  public Options decryptTtl(Duration ttl) {
    this.decryptTtl = ttl;
    return this;
  }

  /** How many unwrapped data keys are kept for decryption. */
  public Options decryptCapacity(long capacity) {
    this.decryptCapacity = capacity;
    return this;
  }

  /** How long a header whose unwrap failed is answered without a new KMS call (0: off). */
  public Options negativeTtl(Duration ttl) {
    this.negativeTtl = ttl;
    return this;
  }

  /** At most this many unwrap KMS calls a second; calls past it fail with {@code Throttled}. */
  public Options maxUnwrapsPerSecond(int rate) {
    if (rate <= 0) {
      throw new EnvelopeException.InvalidArgument("maxUnwrapsPerSecond must be positive");
    }
    this.maxUnwrapsPerSecond = rate;
    return this;
  }

  /**
   * The DEK store of the compact form ({@code sqlite:///path/deks.sqlite}, {@code
   * postgres://…?table=NAME}): new values are compact (72 bytes of overhead, key-committing).
   */
  public Options dekStore(String uri) {
    this.dekStore = uri;
    return this;
  }

  /** The index key store of blind indexes (default: the DEK store). */
  public Options indexStore(String uri) {
    this.indexStore = uri;
    return this;
  }

  /** The C struct; the memory it points to lives as long as the struct's fields are read. */
  NativeLibrary.Options toNative() {
    NativeLibrary.Options o = new NativeLibrary.Options();
    NativeLibrary.Holder.check(NativeLibrary.Holder.LIB.envelope_client_options_default(o));
    o.suite = suite.equals("AES-256-GCM") ? 1 : 2;
    if (cache != null) {
      o.cacheEnabled = (byte) (cache ? 1 : 0);
    }
    if (maxAge != null) {
      o.maxAgeMs = maxAge.toMillis();
    }
    if (maxMessages != null) {
      o.maxMessages = maxMessages;
    }
    if (maxBytes != null) {
      o.maxBytes = maxBytes;
    }
    if (decryptTtl != null) {
      o.decryptTtlMs = decryptTtl.toMillis();
    }
    if (decryptCapacity != null) {
      o.decryptCapacity = decryptCapacity;
    }
    if (negativeTtl != null) {
      o.negativeTtlMs = negativeTtl.toMillis();
    }
    if (maxUnwrapsPerSecond != null) {
      o.maxUnwrapsPerSecond = maxUnwrapsPerSecond;
    }
    if (dekStore != null) {
      Memory m = NativeLibrary.Holder.memory(dekStore.getBytes(StandardCharsets.UTF_8));
      o.dekStoreUri = m;
      o.dekStoreUriLen = dekStore.getBytes(StandardCharsets.UTF_8).length;
    }
    if (indexStore != null) {
      Memory m = NativeLibrary.Holder.memory(indexStore.getBytes(StandardCharsets.UTF_8));
      o.indexStoreUri = m;
      o.indexStoreUriLen = indexStore.getBytes(StandardCharsets.UTF_8).length;
    }
    return o;
  }
}
