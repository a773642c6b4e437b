package envelope

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

func indexedClient(t *testing.T) *Client {
	t.Helper()
	_, uri := newKeyring(t)
	return open(t, uri, &Options{IndexStore: "sqlite://" + filepath.Join(t.TempDir(), "deks.sqlite")})
}

func TestBlindIndexRotationWindow(t *testing.T) {
	c := indexedClient(t)
	if _, err := c.BlindIndex("users.email", []byte("x")); !errors.Is(err, ErrIndexNotFound) {
		t.Fatalf("unknown index: %v", err)
	}
	if v, err := c.CreateBlindIndex("users.email", IndexOptions{Normalizer: "nfkc_casefold+trim_collapse"}); err != nil || v != 1 {
		t.Fatal(v, err)
	}
	v1, err := c.BlindIndex("users.email", []byte("a@b.example"))
	if err != nil || len(v1) != 10 || v1[1] != 1 {
		t.Fatalf("%x %v", v1, err)
	}
	same, _ := c.BlindIndex("users.email", []byte("  A@B.EXAMPLE "))
	if string(same) != string(v1) {
		t.Fatal("normalization")
	}
	text, _ := c.BlindIndexText("users.email", []byte("a@b.example"))
	if !strings.HasPrefix(text, "bi1:") {
		t.Fatal(text)
	}
	if v, err := c.RotateBlindIndex("users.email", IndexOptions{}); err != nil || v != 2 {
		t.Fatal(v, err)
	}
	window, err := c.QueryValues("users.email", []byte("a@b.example"))
	if err != nil || len(window) != 2 || window[0][1] != 2 || string(window[1]) != string(v1) {
		t.Fatalf("%x %v", window, err)
	}
	if err := c.SetBlindIndexState("users.email", 2, "retired"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("retiring the active version: %v", err)
	}
	if err := c.SetBlindIndexState("users.email", 1, "retired"); err != nil {
		t.Fatal(err)
	}
	if window, _ := c.QueryValues("users.email", []byte("a@b.example")); len(window) != 1 {
		t.Fatalf("after retire: %x", window)
	}
	batch, err := c.BlindIndexBatch("users.email", [][]byte{[]byte("a@b.example"), []byte("c")})
	if err != nil || len(batch) != 2 || batch[0][1] != 2 {
		t.Fatal(batch, err)
	}
	var be *BatchError
	if _, err := c.BlindIndexBatch("users.email", [][]byte{[]byte("ok"), {0xff}}); !errors.As(err, &be) || len(be.Errors) != 1 {
		t.Fatalf("a non-UTF-8 item: %v", err)
	}
	if err := c.CheckBlindIndex("users.email", "exact", 0); !errors.Is(err, ErrIndexMismatch) {
		t.Fatalf("mismatched normalizer: %v", err)
	}
	if _, err := c.CreateBlindIndex("users.ssn", IndexOptions{Normalizer: "custom:strip_us+digits", Mode: "private", Bits: 16}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BlindIndex("users.ssn", []byte("US-1")); !errors.Is(err, ErrIndexMismatch) {
		t.Fatalf("custom normalizer not registered: %v", err)
	}
	c.RegisterNormalizer("users.ssn", "strip_us", func(v []byte) []byte { return []byte(strings.TrimPrefix(string(v), "US-")) })
	a, err := c.BlindIndex("users.ssn", []byte("US-123-45-6789"))
	b, _ := c.BlindIndex("users.ssn", []byte("123 45 6789"))
	if err != nil || string(a) != string(b) || len(a) != 4 {
		t.Fatalf("%x %x %v", a, b, err)
	}
}

func TestIndexVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testvectors", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Normalizers []struct {
			Normalizer string `json:"normalizer"`
			InputHex   string `json:"input_hex"`
			OutputHex  string `json:"output_hex"`
		} `json:"normalizers"`
		Refused []struct {
			Normalizer string `json:"normalizer"`
			InputHex   string `json:"input_hex"`
		} `json:"refused_inputs"`
		Invalid []string `json:"invalid_normalizers"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Normalizers) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range file.Normalizers {
		in, _ := hex.DecodeString(v.InputHex)
		got, err := Normalize(v.Normalizer, in)
		if err != nil || hex.EncodeToString(got) != v.OutputHex {
			t.Errorf("%s(%q) = %x, %v; want %s", v.Normalizer, in, got, err, v.OutputHex)
		}
	}
	for _, v := range file.Refused {
		in, _ := hex.DecodeString(v.InputHex)
		if _, err := Normalize(v.Normalizer, in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s(%x): %v", v.Normalizer, in, err)
		}
	}
	for _, spec := range file.Invalid {
		if _, err := Normalize(spec, []byte("x")); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("spec %q: %v", spec, err)
		}
	}
}

func TestIndexedColumnLookupDropsFalsePositives(t *testing.T) {
	c := indexedClient(t)
	// 8 bits over 2,000 addresses: every lookup meets collisions.
	if _, err := c.CreateBlindIndex("users.email", IndexOptions{Normalizer: "nfkc_casefold+trim_collapse", Mode: "private", Bits: 8}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, email_idx BLOB)`); err != nil {
		t.Fatal(err)
	}
	col := c.IndexedColumn("users", "email", "users.email", "nfkc_casefold+trim_collapse")
	col.Placeholder = func(int) string { return "?" }
	for i := 1; i <= 2000; i++ {
		email := fmt.Sprintf("user%d@Example.com", i)
		if _, err := db.Exec(`INSERT INTO users VALUES (?, ?, ?)`, i, col.String(email), col.IndexValue(email)); err != nil {
			t.Fatal(err)
		}
	}
	scan := func(rows *sql.Rows) (int, string, error) {
		var id int
		s := col.NullString()
		err := rows.Scan(&id, s)
		return id, s.String, err
	}
	found, err := Lookup(context.Background(), db, col, `SELECT id, email FROM users WHERE email_idx IN (%s)`, " USER7@example.com", scan)
	if err != nil || len(found) != 1 || found[0] != 7 {
		t.Fatalf("%v %v", found, err)
	}
	var candidates int
	v, _ := c.QueryValues("users.email", []byte("user7@example.com"))
	if err := db.QueryRow(`SELECT count(*) FROM users WHERE email_idx = ?`, v[0]).Scan(&candidates); err != nil || candidates < 2 {
		t.Fatalf("8 bits over 2,000 values must collide: %d %v", candidates, err)
	}
	wrong := c.IndexedColumn("users", "email", "users.email", "exact")
	if _, err := Lookup(context.Background(), db, wrong, `SELECT id, email FROM users WHERE email_idx IN (%s)`, "x", scan); !errors.Is(err, ErrIndexMismatch) {
		t.Fatalf("declared normalizer differs: %v", err)
	}
}
