package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// compactFile is testvectors/compact.json: the compact form's vectors, the DEK store rows
// they resolve through, and store edits.
type compactFile struct {
	Keyring  vectorKeyring    `json:"keyring"`
	DEKStore []map[string]any `json:"dek_store"`
	Vectors  []struct {
		Name           string         `json:"name"`
		Suite          string         `json:"suite"`
		DEKID          uint64         `json:"dek_id"`
		AAD            string         `json:"aad"`
		Plaintext      string         `json:"plaintext"`
		Ciphertext     string         `json:"ciphertext"`
		CiphertextText string         `json:"ciphertext_text"`
		Expected       string         `json:"expected"`
		StoreEdit      map[string]any `json:"store_edit"`
	} `json:"vectors"`
	TextVectors []struct {
		Name     string `json:"name"`
		Text     string `json:"text"`
		Expected string `json:"expected"`
	} `json:"text_vectors"`
}

// editedRows applies a vector's store_edit (as the file documents it) to a copy of the rows.
func editedRows(t *testing.T, rows []map[string]any, edit map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(rows))
	for _, r := range rows {
		c := map[string]any{}
		for k, v := range r {
			c[k] = v
		}
		out = append(out, c)
	}
	index := func(id any) int {
		for i, r := range out {
			if r["id"].(float64) == id.(float64) {
				return i
			}
		}
		t.Fatalf("no row %v", id)
		return -1
	}
	switch edit["op"] {
	case nil:
	case "set":
		i := index(edit["row"])
		for _, field := range []string{"key_version", "wrapped_dek", "commitment", "state", "bound"} {
			if v, ok := edit[field]; ok {
				out[i][field] = v
			}
		}
	case "swap_wrapped":
		ids := edit["rows"].([]any)
		a, b := index(ids[0]), index(ids[1])
		for _, field := range []string{"provider", "key_id", "key_version", "wrapped_dek"} {
			out[a][field], out[b][field] = out[b][field], out[a][field]
		}
	case "swap":
		ids := edit["rows"].([]any)
		a, b := index(ids[0]), index(ids[1])
		out[a], out[b] = out[b], out[a]
		out[a]["id"], out[b]["id"] = out[b]["id"], out[a]["id"]
	case "delete":
		i := index(edit["row"])
		out = append(out[:i], out[i+1:]...)
	default:
		t.Fatalf("unknown store edit %v", edit["op"])
	}
	return out
}

func TestCompactVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testvectors", "compact.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf compactFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	uri := keyringURI(t, vf.Keyring)
	if len(vf.Vectors) < 30 {
		t.Fatalf("only %d vectors", len(vf.Vectors))
	}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			// A fresh store and client per vector: nothing cached between vectors.
			store := "sqlite://" + filepath.Join(t.TempDir(), "deks.sqlite")
			rows, _ := json.Marshal(editedRows(t, vf.DEKStore, v.StoreEdit))
			if _, err := ImportDEKStoreRows(store, rows); err != nil {
				t.Fatal(err)
			}
			c := open(t, uri, &Options{DEKStore: store})
			ct, aad := mustHex(t, v.Ciphertext), mustHex(t, v.AAD)
			pt, err := c.Decrypt(ct, aad)
			if v.Expected != "ok" {
				if want := expectedErrors[v.Expected]; want == nil || !errors.Is(err, want) {
					t.Fatalf("expected %s, got %v", v.Expected, err)
				}
				return
			}
			want := mustHex(t, v.Plaintext)
			if err != nil || !bytes.Equal(pt, want) {
				t.Fatalf("decrypt: %v", err)
			}
			if v.CiphertextText != "" {
				if pt, err := c.DecryptText(v.CiphertextText, aad); err != nil || !bytes.Equal(pt, want) {
					t.Fatalf("text form: %v", err)
				}
			}
			info, err := Inspect(ct)
			if err != nil || info.FormatVersion != int(ct[2]) || info.Committing != (ct[2] == 3) ||
				info.DEKID != v.DEKID || info.Suite != v.Suite || info.KeyID != "" {
				t.Fatalf("inspect: %+v %v", info, err)
			}
		})
	}
	store := "sqlite://" + filepath.Join(t.TempDir(), "deks.sqlite")
	rows, _ := json.Marshal(vf.DEKStore)
	if n, err := ImportDEKStoreRows(store, rows); err != nil || n != len(vf.DEKStore) {
		t.Fatalf("import: %d %v", n, err)
	}
	if _, err := ImportDEKStoreRows(store, rows); !errors.Is(err, ErrDEKStore) {
		t.Fatalf("importing taken ids: %v", err)
	}
	c := open(t, uri, &Options{DEKStore: store})
	for _, v := range vf.TextVectors {
		t.Run(v.Name, func(t *testing.T) {
			_, err := c.DecryptText(v.Text, nil)
			if want := expectedErrors[v.Expected]; want == nil || !errors.Is(err, want) {
				t.Fatalf("expected %s, got %v", v.Expected, err)
			}
		})
	}
}

// An 11-byte value takes 83 bytes (115 characters of text) in the committing compact form
// (51 in version 2, on request), a cold client reads it through the store, and the
// database/sql type stores the ev3: form.
func TestCompactFormSizesAndStore(t *testing.T) {
	_, uri := newKeyring(t)
	store := "sqlite://" + filepath.Join(t.TempDir(), "deks.sqlite")
	c := open(t, uri, &Options{DEKStore: store})
	ct, err := c.Encrypt([]byte("123-45-6789"), []byte("patients.ssn:1"))
	if err != nil || len(ct) != 83 || ct[2] != 3 {
		t.Fatalf("compact ciphertext: %d bytes, %v", len(ct), err)
	}
	text, err := c.EncryptText([]byte("123-45-6789"), []byte("patients.ssn:1"))
	if err != nil || len(text) != 115 || text[:4] != "ev3:" {
		t.Fatalf("compact text: %q %v", text, err)
	}
	v2 := open(t, uri, &Options{DEKStore: store, CompactVersion: 2})
	old, err := v2.Encrypt([]byte("123-45-6789"), []byte("patients.ssn:1"))
	if err != nil || len(old) != 51 || old[2] != 2 {
		t.Fatalf("compact v2 ciphertext: %d bytes, %v", len(old), err)
	}
	if info, err := Inspect(old); err != nil || info.Committing || info.FormatVersion != 2 {
		t.Fatalf("inspect v2: %+v %v", info, err)
	}
	if info, err := Inspect(ct); err != nil || !info.Committing || info.FormatVersion != 3 {
		t.Fatalf("inspect v3: %+v %v", info, err)
	}
	strict := open(t, uri, &Options{DEKStore: store, RefuseCompactV2: true})
	if _, err := strict.Decrypt(old, []byte("patients.ssn:1")); !errors.Is(err, ErrUnsupportedFormatVersion) {
		t.Fatalf("refused v2: %v", err)
	}
	if _, err := Open(uri, &Options{DEKStore: store, CompactVersion: 4}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("compact version 4: %v", err)
	}
	cold := open(t, uri, &Options{DEKStore: store})
	if pt, err := cold.DecryptText(text, []byte("patients.ssn:1")); err != nil || string(pt) != "123-45-6789" {
		t.Fatalf("cold read: %q %v", pt, err)
	}
	if _, err := open(t, uri, nil).Decrypt(ct, []byte("patients.ssn:1")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("without a store: %v", err)
	}
	if _, err := Open(uri, &Options{DEKStore: "redis://x"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad store URI: %v", err)
	}
	col := c.Column("patients", "ssn")
	s := col.String("987-65-4321")
	value, err := s.Value()
	if err != nil || len(value.(string)) != 115 || value.(string)[:4] != "ev3:" {
		t.Fatalf("column value %v %v", value, err)
	}
	back := col.NullString()
	if err := back.Scan([]byte(value.(string))); err != nil || back.String != "987-65-4321" {
		t.Fatalf("scan: %+v %v", back, err)
	}
}
