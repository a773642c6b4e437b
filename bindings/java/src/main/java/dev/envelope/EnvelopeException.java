package dev.envelope;

/**
 * A failed envelope call: the C ABI's status code ({@link #status()}) and its message. Each
 * status has its own subclass ({@link DecryptionFailed}, {@link KeyVersionDestroyed},
 * {@link Unavailable}, …), so callers catch what they handle. Messages never carry key
 * material, plaintext or AAD.
 */
public class EnvelopeException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The C ABI's status codes ({@code envelope_status}). */
  public enum Status {
    /** A required argument was missing (a closed client, say). */
    NULL_ARGUMENT(1),
    /** An argument was invalid. */
    INVALID_ARGUMENT(2),
    /** The library failed internally; the call had no effect. */
    PANIC(3),
    /** Authentication failed: tampered data, the wrong AAD or a foreign wrapped data key. */
    DECRYPTION_FAILED(100),
    /** The input is not a well-formed envelope ciphertext. */
    MALFORMED(101),
    /** The ciphertext's format version is not supported. */
    UNSUPPORTED_FORMAT_VERSION(102),
    /** The ciphertext's algorithm suite is not supported. */
    UNSUPPORTED_SUITE(103),
    /** The ciphertext's KMS provider is not supported. */
    UNSUPPORTED_PROVIDER(104),
    /** The ciphertext's data key belongs to another KMS or key. */
    KEY_NOT_OWNED(105),
    /** A stream ends before its final segment. */
    TRUNCATED(106),
    /** The KEK does not exist. */
    KEY_NOT_FOUND(200),
    /** The KEK version does not exist. */
    KEY_VERSION_NOT_FOUND(201),
    /** The KEK version was destroyed: the data is unrecoverable. */
    KEY_VERSION_DESTROYED(202),
    /** The KEK or its version is disabled. */
    KEY_VERSION_DISABLED(203),
    /** The KEK version is too old for the key's policy. */
    KEY_VERSION_TOO_OLD(204),
    /** The KMS denied the operation. */
    PERMISSION_DENIED(205),
    /** A compact ciphertext's data key is not in the DEK store, or is retired. */
    DEK_NOT_FOUND(206),
    /** The blind index (or version) is not in the index key store. */
    INDEX_NOT_FOUND(207),
    /** The blind index version is retired. */
    INDEX_RETIRED(208),
    /** The blind index does not match its stored definition. */
    INDEX_MISMATCH(209),
    /** The KMS is unreachable or failing transiently (retryable). */
    UNAVAILABLE(300),
    /** The KMS throttled the request (retryable). */
    THROTTLED(301),
    /** Another KMS failure. */
    KMS_ERROR(302),
    /** The DEK store failed. */
    DEK_STORE_ERROR(303),
    /** The key URI is invalid. */
    INVALID_KEY_URI(400),
    /** The key URI needs a backend this library was built without. */
    FEATURE_NOT_ENABLED(401),
    /** A configuration value is invalid. */
    INVALID_CONFIG(402),
    /** The local keyring file cannot be used. */
    KEYRING_ERROR(403),
    /** The plaintext is too large for one message. */
    MESSAGE_TOO_LARGE(404),
    /** The key-use log cannot record: the operation was refused (policy block). */
    AUDIT_LOG_UNAVAILABLE(405),
    /** A status this version of the binding does not name. */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
      this.code = code;
    }

    /** The numeric code ({@code ENVELOPE_*}); -1 for {@link #UNKNOWN}. */
    public int code() {
      return code;
    }

    /** The status with this code, or {@link #UNKNOWN}. */
    public static Status of(int code) {
      for (Status s : values()) {
        if (s.code == code) {
          return s;
        }
      }
      return UNKNOWN;
    }
  }

  private final Status status;
  private final int code;

  EnvelopeException(Status status, String message) {
    this(status, status.code(), message);
  }

  EnvelopeException(Status status, int code, String message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** The status. */
  public Status status() {
    return status;
  }

  /** The numeric status code as the library returned it. */
  public int code() {
    return code;
  }

  /** Whether retrying later may succeed (an unreachable or throttling KMS). */
  public boolean isRetryable() {
    return status == Status.UNAVAILABLE || status == Status.THROTTLED;
  }

  /** The exception for a status code. */
  static EnvelopeException of(int code, String message) {
    Status status = Status.of(code);
    return switch (status) {
      case NULL_ARGUMENT -> new NullArgument(message);
      case INVALID_ARGUMENT -> new InvalidArgument(message);
      case PANIC -> new Internal(message);
      case DECRYPTION_FAILED -> new DecryptionFailed(message);
      case MALFORMED -> new MalformedCiphertext(message);
      case UNSUPPORTED_FORMAT_VERSION -> new UnsupportedFormatVersion(message);
      case UNSUPPORTED_SUITE -> new UnsupportedSuite(message);
      case UNSUPPORTED_PROVIDER -> new UnsupportedProvider(message);
      case KEY_NOT_OWNED -> new KeyNotOwned(message);
      case TRUNCATED -> new Truncated(message);
      case KEY_NOT_FOUND -> new KeyNotFound(message);
      case KEY_VERSION_NOT_FOUND -> new KeyVersionNotFound(message);
      case KEY_VERSION_DESTROYED -> new KeyVersionDestroyed(message);
      case KEY_VERSION_DISABLED -> new KeyVersionDisabled(message);
      case KEY_VERSION_TOO_OLD -> new KeyVersionTooOld(message);
      case PERMISSION_DENIED -> new PermissionDenied(message);
      case DEK_NOT_FOUND -> new DekNotFound(message);
      case INDEX_NOT_FOUND -> new IndexNotFound(message);
      case INDEX_RETIRED -> new IndexRetired(message);
      case INDEX_MISMATCH -> new IndexMismatch(message);
      case UNAVAILABLE -> new Unavailable(message);
      case THROTTLED -> new Throttled(message);
      case KMS_ERROR -> new KmsError(message);
      case DEK_STORE_ERROR -> new DekStoreError(message);
      case INVALID_KEY_URI -> new InvalidKeyUri(message);
      case FEATURE_NOT_ENABLED -> new FeatureNotEnabled(message);
      case INVALID_CONFIG -> new InvalidConfig(message);
      case KEYRING_ERROR -> new KeyringError(message);
      case MESSAGE_TOO_LARGE -> new MessageTooLarge(message);
      case AUDIT_LOG_UNAVAILABLE -> new AuditLogUnavailable(message);
      case UNKNOWN -> new EnvelopeException(Status.UNKNOWN, code, message + " (status " + code + ")");
    };
  }

  /** A required argument was missing (a closed client, say). */
  public static final class NullArgument extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    NullArgument(String message) {
      super(Status.NULL_ARGUMENT, message);
    }
  }

  /** An argument was invalid. */
  public static final class InvalidArgument extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    InvalidArgument(String message) {
      super(Status.INVALID_ARGUMENT, message);
    }
  }

  /** The library failed internally; the call had no effect. */
  public static final class Internal extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    Internal(String message) {
      super(Status.PANIC, message);
    }
  }

  /** Authentication failed: tampered data, the wrong AAD or a foreign wrapped data key. */
  public static final class DecryptionFailed extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    DecryptionFailed(String message) {
      super(Status.DECRYPTION_FAILED, message);
    }
  }

  /** The input is not a well-formed envelope ciphertext. */
  public static final class MalformedCiphertext extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    MalformedCiphertext(String message) {
      super(Status.MALFORMED, message);
    }
  }

  /** The ciphertext's format version is not supported. */
  public static final class UnsupportedFormatVersion extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    UnsupportedFormatVersion(String message) {
      super(Status.UNSUPPORTED_FORMAT_VERSION, message);
    }
  }

  /** The ciphertext's algorithm suite is not supported. */
  public static final class UnsupportedSuite extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    UnsupportedSuite(String message) {
      super(Status.UNSUPPORTED_SUITE, message);
    }
  }

  /** The ciphertext's KMS provider is not supported. */
  public static final class UnsupportedProvider extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    UnsupportedProvider(String message) {
      super(Status.UNSUPPORTED_PROVIDER, message);
    }
  }

  /** The ciphertext's data key belongs to another KMS or key. */
  public static final class KeyNotOwned extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyNotOwned(String message) {
      super(Status.KEY_NOT_OWNED, message);
    }
  }

  /** A stream ends before its final segment. */
  public static final class Truncated extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    Truncated(String message) {
      super(Status.TRUNCATED, message);
    }
  }

  /** The KEK does not exist. */
  public static final class KeyNotFound extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyNotFound(String message) {
      super(Status.KEY_NOT_FOUND, message);
    }
  }

  /** The KEK version does not exist. */
  public static final class KeyVersionNotFound extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyVersionNotFound(String message) {
      super(Status.KEY_VERSION_NOT_FOUND, message);
    }
  }

  /** The KEK version was destroyed: the data is unrecoverable. */
  public static final class KeyVersionDestroyed extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyVersionDestroyed(String message) {
      super(Status.KEY_VERSION_DESTROYED, message);
    }
  }

  /** The KEK or its version is disabled. */
  public static final class KeyVersionDisabled extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyVersionDisabled(String message) {
      super(Status.KEY_VERSION_DISABLED, message);
    }
  }

  /** The KEK version is too old for the key's policy. */
  public static final class KeyVersionTooOld extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyVersionTooOld(String message) {
      super(Status.KEY_VERSION_TOO_OLD, message);
    }
  }

  /** The KMS denied the operation. */
  public static final class PermissionDenied extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    PermissionDenied(String message) {
      super(Status.PERMISSION_DENIED, message);
    }
  }

  /** A compact ciphertext's data key is not in the DEK store, or is retired. */
  public static final class DekNotFound extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    DekNotFound(String message) {
      super(Status.DEK_NOT_FOUND, message);
    }
  }

  /** The blind index (or version) is not in the index key store. */
  public static final class IndexNotFound extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    IndexNotFound(String message) {
      super(Status.INDEX_NOT_FOUND, message);
    }
  }

  /** The blind index version is retired. */
  public static final class IndexRetired extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    IndexRetired(String message) {
      super(Status.INDEX_RETIRED, message);
    }
  }

  /** The blind index does not match its stored definition. */
  public static final class IndexMismatch extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    IndexMismatch(String message) {
      super(Status.INDEX_MISMATCH, message);
    }
  }

  /** The KMS is unreachable or failing transiently (retryable). */
  public static final class Unavailable extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    Unavailable(String message) {
      super(Status.UNAVAILABLE, message);
    }
  }

  /** The KMS throttled the request (retryable). */
  public static final class Throttled extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    Throttled(String message) {
      super(Status.THROTTLED, message);
    }
  }

  /** Another KMS failure. */
  public static final class KmsError extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KmsError(String message) {
      super(Status.KMS_ERROR, message);
    }
  }

  /** The DEK store failed. */
  public static final class DekStoreError extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    DekStoreError(String message) {
      super(Status.DEK_STORE_ERROR, message);
    }
  }

  /** The key URI is invalid. */
  public static final class InvalidKeyUri extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    InvalidKeyUri(String message) {
      super(Status.INVALID_KEY_URI, message);
    }
  }

  /** The key URI needs a backend this library was built without. */
  public static final class FeatureNotEnabled extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    FeatureNotEnabled(String message) {
      super(Status.FEATURE_NOT_ENABLED, message);
    }
  }

  /** A configuration value is invalid. */
  public static final class InvalidConfig extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    InvalidConfig(String message) {
      super(Status.INVALID_CONFIG, message);
    }
  }

  /** The local keyring file cannot be used. */
  public static final class KeyringError extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    KeyringError(String message) {
      super(Status.KEYRING_ERROR, message);
    }
  }

  /** The plaintext is too large for one message. */
  public static final class MessageTooLarge extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    MessageTooLarge(String message) {
      super(Status.MESSAGE_TOO_LARGE, message);
    }
  }

  /** The key-use log cannot record: the operation was refused (policy block). */
  public static final class AuditLogUnavailable extends EnvelopeException {
    private static final long serialVersionUID = 1L;

    AuditLogUnavailable(String message) {
      super(Status.AUDIT_LOG_UNAVAILABLE, message);
    }
  }
}
