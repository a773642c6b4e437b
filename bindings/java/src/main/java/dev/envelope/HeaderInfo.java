package dev.envelope;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A ciphertext's header facts ({@link EnvelopeClient#inspect}): what an auditor or a census
 * needs without any key. Fields a form does not have (a compact value's KMS key, say) are
 * {@code null}.
 *
 * @param formatVersion 1 (self-contained), 2 or 3 (compact), 4 (a stream)
 * @param suite {@code AES-256-GCM} or {@code XChaCha20-Poly1305}
 * @param provider the KMS ({@code local}, {@code aws}, {@code gcp}, {@code vault})
 * @param keyId the KEK's id
 * @param keyVersion the KEK version that wrapped the data key
 * @param headerLength the header's length in bytes
 * @param overhead bytes added to the plaintext
 * @param json the library's JSON, with every field
 */
public record HeaderInfo(
    int formatVersion,
    String suite,
    String provider,
    String keyId,
    String keyVersion,
    long headerLength,
    long overhead,
    String json) {

  static HeaderInfo parse(String json) {
    Map<String, String> f = flatObject(json);
    return new HeaderInfo(
        Integer.parseInt(f.getOrDefault("format_version", "0")),
        f.get("suite"),
        f.get("provider"),
        f.get("key_id"),
        f.get("key_version"),
        Long.parseLong(f.getOrDefault("header_len", "0")),
        Long.parseLong(f.getOrDefault("overhead", "0")),
        json);
  }

  /**
   * The members of a flat JSON object (strings, numbers, booleans, null: what {@code
   * envelope_inspect_json} returns), as strings. Anything else is refused.
   */
  static Map<String, String> flatObject(String json) {
    Map<String, String> out = new LinkedHashMap<>();
    int[] at = {0};
    skipSpace(json, at);
    expect(json, at, '{');
    skipSpace(json, at);
    if (peek(json, at) == '}') {
      return out;
    }
    while (true) {
      skipSpace(json, at);
      String key = string(json, at);
      skipSpace(json, at);
      expect(json, at, ':');
      skipSpace(json, at);
      String value;
      if (peek(json, at) == '"') {
        value = string(json, at);
      } else {
        int start = at[0];
        while (at[0] < json.length() && ",} \n\t\r".indexOf(json.charAt(at[0])) < 0) {
          at[0]++;
        }
        value = json.substring(start, at[0]);
        if (value.isEmpty() || value.startsWith("{") || value.startsWith("[")) {
          throw new IllegalArgumentException("header JSON: not a flat object: " + json);
        }
        if (value.equals("null")) {
          value = null;
        }
      }
      out.put(key, value);
      skipSpace(json, at);
      char c = peek(json, at);
      at[0]++;
      if (c == '}') {
        return out;
      }
      if (c != ',') {
        throw new IllegalArgumentException("header JSON: expected , or } in " + json);
      }
    }
  }

  private static char peek(String s, int[] at) {
    if (at[0] >= s.length()) {
      throw new IllegalArgumentException("header JSON: cut short: " + s);
    }
    return s.charAt(at[0]);
  }

  private static void expect(String s, int[] at, char c) {
    if (peek(s, at) != c) {
      throw new IllegalArgumentException("header JSON: expected " + c + " in " + s);
    }
    at[0]++;
  }

  private static void skipSpace(String s, int[] at) {
    while (at[0] < s.length() && Character.isWhitespace(s.charAt(at[0]))) {
      at[0]++;
    }
  }

  private static String string(String s, int[] at) {
    expect(s, at, '"');
    StringBuilder b = new StringBuilder();
    while (true) {
      char c = peek(s, at);
      at[0]++;
      if (c == '"') {
        return b.toString();
      }
      if (c != '\\') {
        b.append(c);
        continue;
      }
      char e = peek(s, at);
      at[0]++;
      switch (e) {
        case '"', '\\', '/' -> b.append(e);
        case 'b' -> b.append('\b');
        case 'f' -> b.append('\f');
        case 'n' -> b.append('\n');
        case 'r' -> b.append('\r');
        case 't' -> b.append('\t');
        case 'u' -> {
          if (at[0] + 4 > s.length()) {
            throw new IllegalArgumentException("header JSON: cut escape in " + s);
          }
          b.append((char) Integer.parseInt(s.substring(at[0], at[0] + 4), 16));
          at[0] += 4;
        }
        default -> throw new IllegalArgumentException("header JSON: bad escape in " + s);
      }
    }
  }
}
