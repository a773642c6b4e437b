package envelope

import (
	"database/sql/driver"
	"fmt"
)

// Column encrypts values of one database column: the AAD binds table and column
// ("envelope:TABLE.COLUMN", as the Python package's SQLAlchemy types), so a ciphertext copied
// into another column does not decrypt.
type Column struct {
	client *Client
	aad    []byte
}

// Column returns the encryptor of table.column.
func (c *Client) Column(table, column string) *Column {
	return &Column{client: c, aad: []byte("envelope:" + table + "." + column)}
}

// String wraps a string for writing: its Value is the text form ciphertext.
func (col *Column) String(s string) *EncryptedString {
	return &EncryptedString{col: col, String: s, Valid: true}
}

// NullString is an EncryptedString to Scan into (NULL leaves Valid false).
func (col *Column) NullString() *EncryptedString {
	return &EncryptedString{col: col}
}

// Bytes wraps bytes for writing: its Value is the binary ciphertext.
func (col *Column) Bytes(b []byte) *EncryptedBytes {
	return &EncryptedBytes{col: col, Bytes: b, Valid: b != nil}
}

// NullBytes is an EncryptedBytes to Scan into.
func (col *Column) NullBytes() *EncryptedBytes {
	return &EncryptedBytes{col: col}
}

// EncryptedString is a string stored encrypted in a text column (a driver.Valuer and an
// sql.Scanner), like sql.NullString.
type EncryptedString struct {
	col    *Column
	String string
	Valid  bool
}

// Value encrypts the string into the text form (NULL when not Valid).
func (s *EncryptedString) Value() (driver.Value, error) {
	if !s.Valid {
		return nil, nil
	}
	return s.col.client.EncryptText([]byte(s.String), s.col.aad)
}

// Scan decrypts a text-form (or binary) ciphertext read from the database.
func (s *EncryptedString) Scan(src any) error {
	var plain []byte
	var err error
	switch v := src.(type) {
	case nil:
		s.String, s.Valid = "", false
		return nil
	case string:
		plain, err = s.col.client.DecryptText(v, s.col.aad)
	case []byte:
		if len(v) >= 4 && v[0] == 'e' && v[1] == 'v' && v[3] == ':' {
			plain, err = s.col.client.DecryptText(string(v), s.col.aad)
		} else {
			plain, err = s.col.client.Decrypt(v, s.col.aad)
		}
	default:
		return fmt.Errorf("envelope: cannot scan %T into an EncryptedString", src)
	}
	if err != nil {
		return err
	}
	s.String, s.Valid = string(plain), true
	return nil
}

// EncryptedBytes is a byte slice stored encrypted in a binary column.
type EncryptedBytes struct {
	col   *Column
	Bytes []byte
	Valid bool
}

// Value encrypts the bytes into the binary form (NULL when not Valid).
func (b *EncryptedBytes) Value() (driver.Value, error) {
	if !b.Valid {
		return nil, nil
	}
	return b.col.client.Encrypt(b.Bytes, b.col.aad)
}

// Scan decrypts a binary ciphertext read from the database.
func (b *EncryptedBytes) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		b.Bytes, b.Valid = nil, false
		return nil
	case []byte:
		plain, err := b.col.client.Decrypt(v, b.col.aad)
		if err != nil {
			return err
		}
		b.Bytes, b.Valid = plain, true
		return nil
	default:
		return fmt.Errorf("envelope: cannot scan %T into an EncryptedBytes", src)
	}
}
