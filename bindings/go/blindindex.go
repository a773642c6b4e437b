package envelope

/*
#include <stdlib.h>
#include "envelope.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"runtime"
)

// IndexOptions define a blind index version (CreateBlindIndex, RotateBlindIndex); zero
// values keep the defaults (create: normalizer "exact", mode "unique" with 64 bits;
// rotate: the active version's).
type IndexOptions struct {
	// Normalizer is a spec: "exact", or steps joined by "+" (nfkc_casefold,
	// trim_collapse, digits; custom:NAME first).
	Normalizer string
	// Mode is "unique" (lookups return the row) or "private" (deliberately colliding:
	// set Bits).
	Mode string
	// Bits is the tag length, 8 to 256.
	Bits int
}

type customNormalizer struct {
	name string
	fn   func([]byte) []byte
}

// RegisterNormalizer runs fn on every value of index before its built-in normalizer steps:
// the index's custom:NAME step (the name is checked against the index key store's).
func (c *Client) RegisterNormalizer(index, name string, fn func([]byte) []byte) {
	c.normalizers.Store(index, customNormalizer{name: name, fn: fn})
}

func (c *Client) custom(index string, value []byte) ([]byte, []byte) {
	found, ok := c.normalizers.Load(index)
	if !ok {
		return value, nil
	}
	n := found.(customNormalizer)
	return n.fn(value), []byte(n.name)
}

const (
	indexBinary = C.ENVELOPE_INDEX_BINARY
	indexText   = C.ENVELOPE_INDEX_TEXT
)

func (c *Client) blindIndex(index string, value []byte, form C.uint32_t) ([]byte, error) {
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	data, custom := c.custom(index, value)
	name := []byte(index)
	var out *C.uint8_t
	var n C.size_t
	if st := C.envelope_blind_index(ptr, ptrOf(name), C.size_t(len(name)), ptrOf(data), C.size_t(len(data)),
		ptrOf(custom), C.size_t(len(custom)), form, &out, &n); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	return takeBytes(out, n), nil
}

// BlindIndex is the index value of value under the index's active version, in the binary
// form (for a bytea/BLOB index column): what a writer stores.
func (c *Client) BlindIndex(index string, value []byte) ([]byte, error) {
	return c.blindIndex(index, value, indexBinary)
}

// BlindIndexText is BlindIndex in the text form ("bi<version>:<base64url>", for a text
// index column).
func (c *Client) BlindIndexText(index string, value []byte) (string, error) {
	b, err := c.blindIndex(index, value, indexText)
	return string(b), err
}

// BlindIndexBatch computes the binary index values of many values in one native call. On
// a *BatchError the other items' values are in its Results.
func (c *Client) BlindIndexBatch(index string, values [][]byte) ([][]byte, error) {
	if len(values) == 0 {
		return [][]byte{}, nil
	}
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	items := make([][]byte, len(values))
	var custom []byte
	for i, v := range values {
		items[i], custom = c.custom(index, v)
	}
	data, offsets := pack(items)
	name := []byte(index)
	statuses := make([]C.uint32_t, len(items))
	outOffsets := make([]C.size_t, len(items)+1)
	var out *C.uint8_t
	var outLen C.size_t
	if st := C.envelope_blind_index_batch(ptr, ptrOf(name), C.size_t(len(name)), C.size_t(len(items)),
		ptrOf(data), C.size_t(len(data)), &offsets[0], ptrOf(custom), C.size_t(len(custom)), indexBinary,
		&statuses[0], &out, &outLen, &outOffsets[0]); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	return collect(statuses, takeBytes(out, outLen), outOffsets)
}

func (c *Client) queryValues(index string, value []byte, form C.uint32_t) ([][]byte, error) {
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	data, custom := c.custom(index, value)
	name := []byte(index)
	var out *C.uint8_t
	var n, count C.size_t
	if st := C.envelope_blind_index_query_values(ptr, ptrOf(name), C.size_t(len(name)), ptrOf(data), C.size_t(len(data)),
		ptrOf(custom), C.size_t(len(custom)), form, &out, &n, &count); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	packed := takeBytes(out, n)
	values := make([][]byte, 0, int(count))
	for at := 0; at+2 <= len(packed); {
		l := int(binary.BigEndian.Uint16(packed[at:]))
		values = append(values, packed[at+2:at+2+l:at+2+l])
		at += 2 + l
	}
	if len(values) != int(count) {
		return nil, &Error{Status: StatusUnknown, Message: fmt.Sprintf("query values: %d decoded, %d announced", len(values), count)}
	}
	return values, nil
}

// QueryValues are the binary index values a lookup of value must match: one per version
// not retired, the active one first (two during a rotation window). Select
// `WHERE idx IN (...)`, decrypt the candidates and drop those whose normalized plaintext
// differs (BlindIndexColumn.Lookup does all three).
func (c *Client) QueryValues(index string, value []byte) ([][]byte, error) {
	return c.queryValues(index, value, indexBinary)
}

// QueryValuesText is QueryValues in the text form.
func (c *Client) QueryValuesText(index string, value []byte) ([]string, error) {
	values, err := c.queryValues(index, value, indexText)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out, nil
}

// CheckBlindIndex fails with an error matching ErrIndexMismatch unless the index's active
// version uses normalizer (and bits, when not 0); ErrIndexNotFound when there is none.
func (c *Client) CheckBlindIndex(index, normalizer string, bits int) error {
	ptr, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.release()
	name, spec := []byte(index), []byte(normalizer)
	if st := C.envelope_blind_index_check(ptr, ptrOf(name), C.size_t(len(name)), ptrOf(spec), C.size_t(len(spec)), C.uint32_t(bits)); st != C.ENVELOPE_OK {
		return lastError(st)
	}
	return nil
}

func (c *Client) defineIndex(index string, opts IndexOptions, rotate bool) (int, error) {
	ptr, err := c.acquire()
	if err != nil {
		return 0, err
	}
	defer c.release()
	name, spec, mode := []byte(index), []byte(opts.Normalizer), []byte(opts.Mode)
	var version C.uint32_t
	if st := C.envelope_blind_index_define(ptr, ptrOf(name), C.size_t(len(name)), ptrOf(spec), C.size_t(len(spec)),
		ptrOf(mode), C.size_t(len(mode)), C.uint32_t(opts.Bits), C.bool(rotate), &version); st != C.ENVELOPE_OK {
		return 0, lastError(st)
	}
	return int(version), nil
}

// CreateBlindIndex creates an index: version 1, active, its key drawn fresh and wrapped by
// the client's KEK. It returns the version.
func (c *Client) CreateBlindIndex(index string, opts IndexOptions) (int, error) {
	return c.defineIndex(index, opts, false)
}

// RotateBlindIndex adds a version and makes it active; the previous one answers queries
// until retired (run `envelope reindex`, then `envelope retire --index`).
func (c *Client) RotateBlindIndex(index string, opts IndexOptions) (int, error) {
	return c.defineIndex(index, opts, true)
}

// SetBlindIndexState sets a version's state: "active", "query" or "retired" (retire only
// versions no row carries: `envelope retire --index` checks).
func (c *Client) SetBlindIndexState(index string, version int, state string) error {
	states := map[string]C.uint32_t{"active": C.ENVELOPE_INDEX_ACTIVE, "query": C.ENVELOPE_INDEX_QUERY, "retired": C.ENVELOPE_INDEX_RETIRED_STATE}
	s, ok := states[state]
	if !ok {
		return &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("state %q: active, query or retired", state)}
	}
	ptr, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.release()
	name := []byte(index)
	if st := C.envelope_blind_index_set_state(ptr, ptrOf(name), C.size_t(len(name)), C.uint32_t(version), s); st != C.ENVELOPE_OK {
		return lastError(st)
	}
	return nil
}

// Normalize runs the built-in steps of a normalizer spec on value (a leading custom:NAME
// step is skipped): exactly what an index hashes, for comparing decrypted candidates.
func Normalize(normalizer string, value []byte) ([]byte, error) {
	spec := []byte(normalizer)
	var out *C.uint8_t
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.envelope_normalize(ptrOf(spec), C.size_t(len(spec)), ptrOf(value), C.size_t(len(value)), &out, &n); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	return takeBytes(out, n), nil
}
