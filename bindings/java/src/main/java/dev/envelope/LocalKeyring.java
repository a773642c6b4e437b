package dev.envelope;

import com.sun.jna.ptr.IntByReference;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The local keyring (a development KMS in a file, {@code local:///path/keyring.json#KEY}):
 * create, rotate and destroy versions, as {@code envelope keys} does.
 */
public final class LocalKeyring {
  private LocalKeyring() {}

  /** Creates a keyring file (mode 0600) holding {@code keyId} at version 1; fails if it exists. */
  public static void create(Path path, String keyId) {
    byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
    byte[] k = keyId.getBytes(StandardCharsets.UTF_8);
    NativeLibrary.Holder.check(
        NativeLibrary.Holder.LIB.envelope_local_keyring_create(p, p.length, k, k.length));
  }

  /** Rotates {@code keyId}; returns the new primary version. */
  public static int rotate(Path path, String keyId) {
    byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
    byte[] k = keyId.getBytes(StandardCharsets.UTF_8);
    IntByReference version = new IntByReference();
    NativeLibrary.Holder.check(
        NativeLibrary.Holder.LIB.envelope_local_keyring_rotate(p, p.length, k, k.length, version));
    return version.getValue();
  }

  /** Destroys a version that is not the primary one (crypto-shredding). */
  public static void destroyVersion(Path path, String keyId, int version) {
    byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
    byte[] k = keyId.getBytes(StandardCharsets.UTF_8);
    NativeLibrary.Holder.check(
        NativeLibrary.Holder.LIB.envelope_local_keyring_destroy_version(
            p, p.length, k, k.length, version));
  }
}
