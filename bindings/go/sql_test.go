package envelope

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

func TestDatabaseSQLColumns(t *testing.T) {
	_, uri := newKeyring(t)
	c := open(t, uri, nil)
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE patients (id INTEGER PRIMARY KEY, ssn TEXT, scan BLOB)`); err != nil {
		t.Fatal(err)
	}
	ssn, scan := c.Column("patients", "ssn"), c.Column("patients", "scan")
	if _, err := db.Exec(`INSERT INTO patients VALUES (?, ?, ?)`, 1, ssn.String("123-45-6789"), scan.Bytes([]byte{0, 1, 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO patients VALUES (?, ?, ?)`, 2, ssn.NullString(), scan.NullBytes()); err != nil {
		t.Fatal(err)
	}

	var raw string
	if err := db.QueryRow(`SELECT ssn FROM patients WHERE id = 1`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, "ev1:") || strings.Contains(raw, "123-45") {
		t.Fatalf("stored %q", raw)
	}

	gotSSN, gotScan := ssn.NullString(), scan.NullBytes()
	if err := db.QueryRow(`SELECT ssn, scan FROM patients WHERE id = 1`).Scan(gotSSN, gotScan); err != nil {
		t.Fatal(err)
	}
	if !gotSSN.Valid || gotSSN.String != "123-45-6789" || string(gotScan.Bytes) != "\x00\x01\x02" {
		t.Fatalf("read back %+v %+v", gotSSN, gotScan)
	}
	nullSSN, nullScan := ssn.NullString(), scan.NullBytes()
	if err := db.QueryRow(`SELECT ssn, scan FROM patients WHERE id = 2`).Scan(nullSSN, nullScan); err != nil {
		t.Fatal(err)
	}
	if nullSSN.Valid || nullScan.Valid {
		t.Fatal("NULL must stay NULL")
	}

	// The AAD binds the column: the ssn ciphertext does not decrypt as another column.
	other := c.Column("patients", "email").NullString()
	err = db.QueryRow(`SELECT ssn FROM patients WHERE id = 1`).Scan(other)
	if !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("moved ciphertext: %v", err)
	}
}
