package envelope

/*
#include "envelope.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// BatchError reports the items of a batch that failed; the others succeeded.
type BatchError struct {
	// Errors maps item indexes to their errors.
	Errors map[int]error
	// Results holds every item's output (nil for failed items).
	Results [][]byte
}

func (e *BatchError) Error() string {
	var parts []string
	for i, err := range e.Errors {
		parts = append(parts, fmt.Sprintf("item %d: %v", i, err))
		if len(parts) == 3 {
			break
		}
	}
	return fmt.Sprintf("envelope: %d of %d batch items failed (%s)", len(e.Errors), len(e.Results), strings.Join(parts, "; "))
}

// Unwrap exposes the item errors to errors.Is / errors.As.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, len(e.Errors))
	for _, err := range e.Errors {
		out = append(out, err)
	}
	return out
}

type batchOp int

const (
	encryptOp batchOp = iota
	decryptOp
)

func pack(items [][]byte) ([]byte, []C.size_t) {
	total := 0
	for _, it := range items {
		total += len(it)
	}
	buf := make([]byte, 0, total)
	offsets := make([]C.size_t, 1, len(items)+1)
	for _, it := range items {
		buf = append(buf, it...)
		offsets = append(offsets, C.size_t(len(buf)))
	}
	return buf, offsets
}

func (c *Client) batch(op batchOp, items [][]byte, aads [][]byte, shared []byte) ([][]byte, error) {
	if len(items) == 0 {
		return [][]byte{}, nil
	}
	if aads != nil && len(aads) != len(items) {
		return nil, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("%d items but %d AADs", len(items), len(aads))}
	}
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	data, dataOffsets := pack(items)
	aadBuf, aadLen := shared, len(shared)
	var aadOffsets *C.size_t
	if aads != nil {
		var offsets []C.size_t
		aadBuf, offsets = pack(aads)
		aadLen = len(aadBuf)
		aadOffsets = &offsets[0]
	}
	statuses := make([]C.uint32_t, len(items))
	outOffsets := make([]C.size_t, len(items)+1)
	var out *C.uint8_t
	var outLen C.size_t
	var st C.envelope_status
	if op == encryptOp {
		st = C.envelope_encrypt_batch(ptr, C.size_t(len(items)), ptrOf(data), C.size_t(len(data)), &dataOffsets[0],
			ptrOf(aadBuf), C.size_t(aadLen), aadOffsets, &statuses[0], &out, &outLen, &outOffsets[0])
	} else {
		st = C.envelope_decrypt_batch(ptr, C.size_t(len(items)), ptrOf(data), C.size_t(len(data)), &dataOffsets[0],
			ptrOf(aadBuf), C.size_t(aadLen), aadOffsets, &statuses[0], &out, &outLen, &outOffsets[0])
	}
	if st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	return collect(statuses, takeBytes(out, outLen), outOffsets)
}

// collect splits a batch's output at its offsets; items whose status is not OK become a
// *BatchError (with the other items' results).
func collect(statuses []C.uint32_t, blob []byte, outOffsets []C.size_t) ([][]byte, error) {
	results := make([][]byte, len(statuses))
	var failures map[int]error
	for i := range statuses {
		if statuses[i] != C.ENVELOPE_OK {
			if failures == nil {
				failures = map[int]error{}
			}
			s := Status(statuses[i])
			failures[i] = &Error{Status: s, Message: s.String()}
			continue
		}
		results[i] = blob[outOffsets[i]:outOffsets[i+1]:outOffsets[i+1]]
	}
	if failures != nil {
		return nil, &BatchError{Errors: failures, Results: results}
	}
	return results, nil
}

// EncryptBatch encrypts many values in one native call, each bound to its own AAD (aads may
// be nil for none). On a *BatchError the other items' ciphertexts are in its Results.
func (c *Client) EncryptBatch(plaintexts, aads [][]byte) ([][]byte, error) {
	return c.batch(encryptOp, plaintexts, aads, nil)
}

// DecryptBatch decrypts many binary ciphertexts in one native call.
func (c *Client) DecryptBatch(ciphertexts, aads [][]byte) ([][]byte, error) {
	return c.batch(decryptOp, ciphertexts, aads, nil)
}

// EncryptBatchSharedAAD encrypts many values bound to one AAD (a column-level AAD).
func (c *Client) EncryptBatchSharedAAD(plaintexts [][]byte, aad []byte) ([][]byte, error) {
	return c.batch(encryptOp, plaintexts, nil, aad)
}

// DecryptBatchSharedAAD decrypts many values bound to one AAD.
func (c *Client) DecryptBatchSharedAAD(ciphertexts [][]byte, aad []byte) ([][]byte, error) {
	return c.batch(decryptOp, ciphertexts, nil, aad)
}
