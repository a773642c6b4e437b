package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// vectorKeyring is the keyring block of testvectors/v1.json and compact.json.
type vectorKeyring struct {
	KeyID          string `json:"key_id"`
	PrimaryVersion int    `json:"primary_version"`
	Versions       map[string]struct {
		State string `json:"state"`
		KEK   string `json:"kek"`
	} `json:"versions"`
}

// keyringURI writes the vectors' KEKs into a keyring file in the documented format.
func keyringURI(t *testing.T, k vectorKeyring) string {
	var versions []map[string]any
	for v, e := range k.Versions {
		n, _ := strconv.Atoi(v)
		entry := map[string]any{"version": n, "state": e.State, "created_at": 0}
		if e.KEK != "" {
			entry["material"] = base64.StdEncoding.EncodeToString(mustHex(t, e.KEK))
		}
		versions = append(versions, entry)
	}
	doc, _ := json.Marshal(map[string]any{
		"envelope_keyring": 1,
		"keys": map[string]any{k.KeyID: map[string]any{
			"primary_version": k.PrimaryVersion, "versions": versions}},
	})
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return "local://" + path + "#" + k.KeyID
}

type vectorFile struct {
	Keyring vectorKeyring `json:"keyring"`
	Vectors []struct {
		Name            string `json:"name"`
		Suite           string `json:"suite"`
		KeyVersion      string `json:"key_version"`
		AAD             string `json:"aad"`
		Plaintext       *string
		PlaintextRepeat *struct {
			Hex string `json:"hex"`
			Len int    `json:"len"`
		} `json:"plaintext_repeat"`
		Ciphertext        string            `json:"ciphertext"`
		CiphertextText    string            `json:"ciphertext_text"`
		Expected          string            `json:"expected"`
		EncryptionContext map[string]string `json:"encryption_context"`
	} `json:"vectors"`
	TextVectors []struct {
		Name     string `json:"name"`
		Text     string `json:"text"`
		Expected string `json:"expected"`
	} `json:"text_vectors"`
}

var expectedErrors = map[string]error{
	"decryption_failed":          ErrDecryptionFailed,
	"malformed":                  ErrMalformed,
	"unsupported_format_version": ErrUnsupportedFormatVersion,
	"unsupported_suite":          ErrUnsupportedSuite,
	"unsupported_provider":       ErrUnsupportedProvider,
	"key_not_owned":              ErrKeyNotOwned,
	"key_not_found":              ErrKeyNotFound,
	"key_version_not_found":      ErrKeyVersionNotFound,
	"key_version_destroyed":      ErrKeyVersionDestroyed,
	"dek_not_found":              ErrDEKNotFound,
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testvectors", "v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	uri := keyringURI(t, vf.Keyring)
	if len(vf.Vectors) < 40 {
		t.Fatalf("only %d vectors", len(vf.Vectors))
	}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			// Fresh: no DEK carried between vectors.
			c := open(t, uri, &Options{EncryptionContext: v.EncryptionContext})
			ct, aad := mustHex(t, v.Ciphertext), mustHex(t, v.AAD)
			pt, err := c.Decrypt(ct, aad)
			if v.Expected != "ok" {
				if want := expectedErrors[v.Expected]; want == nil || !errors.Is(err, want) {
					t.Fatalf("expected %s, got %v", v.Expected, err)
				}
				return
			}
			var want []byte
			if v.Plaintext != nil {
				want = mustHex(t, *v.Plaintext)
			} else {
				pattern := mustHex(t, v.PlaintextRepeat.Hex)
				for len(want) < v.PlaintextRepeat.Len {
					want = append(want, pattern...)
				}
				want = want[:v.PlaintextRepeat.Len]
			}
			if err != nil || !bytes.Equal(pt, want) {
				t.Fatalf("decrypt: %v", err)
			}
			if v.CiphertextText != "" {
				if pt, err := c.DecryptText(v.CiphertextText, aad); err != nil || !bytes.Equal(pt, want) {
					t.Fatalf("text form: %v", err)
				}
			}
			info, err := Inspect(ct)
			if err != nil || info.Suite != v.Suite || info.KeyVersion != v.KeyVersion {
				t.Fatalf("inspect: %+v %v", info, err)
			}
		})
	}
	if len(vf.TextVectors) < 10 {
		t.Fatalf("only %d text vectors", len(vf.TextVectors))
	}
	c := open(t, uri, nil)
	for _, v := range vf.TextVectors {
		t.Run(v.Name, func(t *testing.T) {
			_, err := c.DecryptText(v.Text, nil)
			if want := expectedErrors[v.Expected]; want == nil || !errors.Is(err, want) {
				t.Fatalf("expected %s, got %v", v.Expected, err)
			}
		})
	}
}
