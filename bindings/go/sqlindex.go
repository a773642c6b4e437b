package envelope

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
)

// IndexedColumn is an encrypted column with a blind-index companion column: its Column
// encrypts and decrypts the values (AAD "envelope:TABLE.COLUMN"), IndexValue writes the
// companion column, and Lookup finds rows by value.
type IndexedColumn struct {
	*Column
	// Index is the blind index's name.
	Index string
	// Normalizer is the spec the index must use (checked against the store once).
	Normalizer string
	// Placeholder formats the i-th (1-based) query argument: "$1" style (PostgreSQL, the
	// default) or, for drivers that take "?", func(int) string { return "?" }.
	Placeholder func(i int) string

	checkOnce sync.Once
	checkErr  error
}

// IndexedColumn returns table.column with its blind index (normalizer: the index's spec).
func (c *Client) IndexedColumn(table, column, index, normalizer string) *IndexedColumn {
	return &IndexedColumn{
		Column:      c.Column(table, column),
		Index:       index,
		Normalizer:  normalizer,
		Placeholder: func(i int) string { return fmt.Sprintf("$%d", i) },
	}
}

// Check fails (ErrIndexMismatch) when the declared normalizer is not the stored index's;
// IndexValue and Lookup call it before their first use.
func (ic *IndexedColumn) Check() error {
	ic.checkOnce.Do(func() { ic.checkErr = ic.client.CheckBlindIndex(ic.Index, ic.Normalizer, 0) })
	return ic.checkErr
}

type indexValuer struct {
	ic    *IndexedColumn
	value string
}

// Value computes the binary index value (a driver.Valuer).
func (v indexValuer) Value() (driver.Value, error) {
	if err := v.ic.Check(); err != nil {
		return nil, err
	}
	return v.ic.client.BlindIndex(v.ic.Index, []byte(v.value))
}

// IndexValue is the companion column's value for plaintext s (binary form), as a
// driver.Valuer: `INSERT … VALUES ($1, $2)` with col.String(s), col.IndexValue(s).
func (ic *IndexedColumn) IndexValue(s string) driver.Valuer {
	return indexValuer{ic: ic, value: s}
}

// Matches reports whether a decrypted candidate equals the looked-up value after the
// index's normalizer (false positives do not).
func (ic *IndexedColumn) Matches(candidate, value string) (bool, error) {
	a, b := []byte(candidate), []byte(value)
	if found, ok := ic.client.normalizers.Load(ic.Index); ok {
		n := found.(customNormalizer)
		a, b = n.fn(a), n.fn(b)
	}
	na, err := Normalize(ic.Normalizer, a)
	if err != nil {
		return false, err
	}
	nb, err := Normalize(ic.Normalizer, b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(na, nb), nil
}

// Lookup finds the rows whose column holds value: query must contain one %s, replaced by
// the placeholders of the lookup's index values (`SELECT id, email FROM users WHERE
// email_idx IN (%s)`); scan reads one row and returns it with its decrypted plaintext; the
// rows whose plaintext differs (false positives) are dropped.
func Lookup[T any](ctx context.Context, db *sql.DB, ic *IndexedColumn, query, value string, scan func(*sql.Rows) (T, string, error)) ([]T, error) {
	if err := ic.Check(); err != nil {
		return nil, err
	}
	values, err := ic.client.QueryValues(ic.Index, []byte(value))
	if err != nil {
		return nil, err
	}
	marks := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		marks[i] = ic.Placeholder(i + 1)
		args[i] = v
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(query, strings.Join(marks, ", ")), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var found []T
	for rows.Next() {
		row, plain, err := scan(rows)
		if err != nil {
			return nil, err
		}
		ok, err := ic.Matches(plain, value)
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, row)
		}
	}
	return found, rows.Err()
}
