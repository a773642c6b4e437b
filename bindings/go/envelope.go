// Package envelope is the Go binding of the envelope SDK: envelope encryption (AES-256-GCM
// data keys wrapped by a KMS: a local keyring, AWS KMS or Vault/OpenBao Transit) over the
// envelope C ABI, linked statically. cgo finds the C library through pkg-config (package
// envelope-static): install it with `scripts/install-c.sh PREFIX` from the envelope
// repository and set PKG_CONFIG_PATH=PREFIX/lib/pkgconfig when PREFIX is not a system prefix.
//
// A Client is safe for concurrent use. Close it to zeroize its cached keys at once.
package envelope

/*
#cgo pkg-config: envelope-static
#include <stdlib.h>
#include "envelope.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Suite is an AEAD algorithm suite.
type Suite uint32

const (
	// AES256GCM is AES-256-GCM (the default).
	AES256GCM Suite = C.ENVELOPE_SUITE_AES_256_GCM
	// XChaCha20Poly1305 is XChaCha20-Poly1305.
	XChaCha20Poly1305 Suite = C.ENVELOPE_SUITE_XCHACHA20_POLY1305
)

// initialOverhead is the room first reserved for a ciphertext's header and tag beyond the
// plaintext; the client then remembers the overhead it last saw (it is constant per DEK).
const initialOverhead = 512

// Options configure a Client; the zero value of each field keeps the library default.
type Options struct {
	Suite Suite
	// DisableCache calls the KMS for every encrypt and decrypt.
	DisableCache bool
	// MaxAgeMillis, MaxMessages and MaxBytes bound how long and how much one DEK encrypts.
	MaxAgeMillis, MaxMessages, MaxBytes uint64
	// DecryptTTLMillis and DecryptCapacity bound the cache of unwrapped DEKs.
	DecryptTTLMillis, DecryptCapacity uint64
	// EncryptionContext is bound to every KMS wrap and unwrap.
	EncryptionContext map[string]string
	// NegativeTTLMillis: how long a KEK reference whose unwrap failed for a lasting reason
	// is answered without a KMS call (0 keeps the default, 60 s); DisableNegativeCache
	// turns that memory off.
	NegativeTTLMillis    uint64
	DisableNegativeCache bool
	// MaxUnwrapsPerSecond caps unwrap and rewrap KMS calls (0: no limit); calls past it
	// fail at once with an error matching ErrThrottled.
	MaxUnwrapsPerSecond uint32
	// DEKStore names a DEK store (sqlite:///path/deks.sqlite,
	// postgres://user@host:port/db?table=NAME): the client then writes the compact form
	// (version 3: 72 bytes of overhead for AES-256-GCM, key-committing; the wrapped DEK is
	// kept once in the store, and a key rotation rewraps the store, not the values). Both
	// forms decrypt either way; compact values need the store.
	DEKStore string
	// CompactVersion is the compact version written: 0 or 3 (the default,
	// key-committing) or 2 (40 bytes of overhead, NOT key-committing: someone who knows two
	// DEKs and can write the store can make one value decrypt to two plaintexts; only for
	// readers that cannot read version 3 yet).
	CompactVersion uint32
	// IndexStore names the index key store of blind indexes (a DEK store URI; empty: the
	// DEKStore, if any). Index keys are wrapped by this client's KEK.
	IndexStore string
	// RefuseCompactV2 refuses version 2 compact values when decrypting (an error matching
	// ErrUnsupportedFormatVersion), once none are left.
	RefuseCompactV2 bool
	// Audit turns the key-use log on (nil: off).
	Audit *AuditOptions
}

// AuditOptions configure the key-use log: every KMS call, and once a minute how many
// encryptions and decryptions each cached DEK served, as hash-chained canonical JSON lines
// with signed checkpoints (verify with `envelope audit verify DIR --public-key …`). Never
// a key, a plaintext or an AAD. Clients of one process naming one Dir share one writer.
type AuditOptions struct {
	// Dir is the log directory (required).
	Dir string `json:"dir"`
	// Signer signs checkpoints (required): an Ed25519 key file from `envelope audit
	// keygen`, or vault://HOST:PORT/transit/keys/NAME.
	Signer string `json:"signer"`
	// Actor is the service name every line carries (default "envelope").
	Actor string `json:"actor,omitempty"`
	// Label is carried by this client's events (a table, a column; never a secret).
	Label string `json:"label,omitempty"`
	// Policy is "block" (default: operations fail closed with ErrAuditLogUnavailable while
	// the log cannot write), "block:SECONDS", or "count" (never block; lost events are
	// counted in the log).
	Policy string `json:"policy,omitempty"`
	// CheckpointEvery is the number of lines between signed checkpoints (default 1000).
	CheckpointEvery uint64 `json:"checkpoint_every,omitempty"`
}

// Client encrypts and decrypts under one KEK named by a key URI.
type Client struct {
	mu       sync.RWMutex // guards ptr against Close during a call
	ptr      *C.envelope_client
	overhead atomic.Int64 // the last ciphertext's header and tag length
	// normalizers holds the caller functions of blind indexes (index → name, function).
	normalizers sync.Map
}

// HeaderInfo holds header facts of a ciphertext, read without any key or store. Format
// version 1 names its KEK (Provider, KeyID, KeyVersion, WrappedDEKLen; DEKID is 0); the
// compact form (format version 3, or the non-committing 2) names its DEK store row (DEKID;
// the KEK fields are empty); Committing says whether it carries its key commitment.
type HeaderInfo struct {
	FormatVersion int    `json:"format_version"`
	Suite         string `json:"suite"`
	Provider      string `json:"provider"`
	KeyID         string `json:"key_id"`
	KeyVersion    string `json:"key_version"`
	WrappedDEKLen int    `json:"wrapped_dek_len"`
	DEKID         uint64 `json:"dek_id"`
	Committing    bool   `json:"committing"`
	HeaderLen     int    `json:"header_len"`
	PlaintextLen  int    `json:"plaintext_len"`
	Overhead      int    `json:"overhead"`
	// SegmentSize is a stream's plaintext bytes per segment (format version 4), else 0.
	SegmentSize uint32 `json:"segment_size"`
}

func ptrOf(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// takeBytes copies library-owned bytes into Go memory and frees (zeroizes) them.
func takeBytes(p *C.uint8_t, n C.size_t) []byte {
	out := C.GoBytes(unsafe.Pointer(p), C.int(n))
	C.envelope_bytes_free(p, n)
	return out
}

// Open creates a client for a key URI: local:///path/keyring.json[#KEY],
// aws-kms://arn:aws:kms:..., vault://HOST:PORT/MOUNT/keys/NAME. opts may be nil.
func Open(keyURI string, opts *Options) (*Client, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var options C.struct_envelope_client_options
	if st := C.envelope_client_options_default(&options); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	var context []byte
	if opts != nil {
		if opts.Suite != 0 {
			options.suite = C.uint32_t(opts.Suite)
		}
		options.cache_enabled = C.bool(!opts.DisableCache)
		set := func(dst *C.uint64_t, v uint64) {
			if v != 0 {
				*dst = C.uint64_t(v)
			}
		}
		set(&options.max_age_ms, opts.MaxAgeMillis)
		set(&options.max_messages, opts.MaxMessages)
		set(&options.max_bytes, opts.MaxBytes)
		set(&options.decrypt_ttl_ms, opts.DecryptTTLMillis)
		set(&options.decrypt_capacity, opts.DecryptCapacity)
		set(&options.negative_ttl_ms, opts.NegativeTTLMillis)
		if opts.DisableNegativeCache {
			options.negative_ttl_ms = 0
		}
		options.max_unwraps_per_second = C.uint32_t(opts.MaxUnwrapsPerSecond)
		options.compact_version = C.uint32_t(opts.CompactVersion)
		options.refuse_compact_v2 = C.bool(opts.RefuseCompactV2)
		if len(opts.EncryptionContext) > 0 {
			var err error
			if context, err = json.Marshal(opts.EncryptionContext); err != nil {
				return nil, err
			}
		}
	}
	// The options struct holds pointers to the context and the store URI: they must live in
	// C memory.
	if opts != nil && opts.DEKStore != "" {
		cstore := C.CBytes([]byte(opts.DEKStore))
		defer C.free(cstore)
		options.dek_store_uri = (*C.uint8_t)(cstore)
		options.dek_store_uri_len = C.size_t(len(opts.DEKStore))
	}
	if opts != nil && opts.IndexStore != "" {
		cindex := C.CBytes([]byte(opts.IndexStore))
		defer C.free(cindex)
		options.index_store_uri = (*C.uint8_t)(cindex)
		options.index_store_uri_len = C.size_t(len(opts.IndexStore))
	}
	if opts != nil && opts.Audit != nil {
		audit, err := json.Marshal(opts.Audit)
		if err != nil {
			return nil, err
		}
		caudit := C.CBytes(audit)
		defer C.free(caudit)
		options.audit_json = (*C.uint8_t)(caudit)
		options.audit_json_len = C.size_t(len(audit))
	}
	if len(context) > 0 {
		cctx := C.CBytes(context)
		defer C.free(cctx)
		options.encryption_context_json = (*C.uint8_t)(cctx)
		options.encryption_context_json_len = C.size_t(len(context))
	}
	uri := []byte(keyURI)
	var ptr *C.envelope_client
	if st := C.envelope_client_new(ptrOf(uri), C.size_t(len(uri)), &options, &ptr); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	c := &Client{ptr: ptr}
	runtime.SetFinalizer(c, (*Client).Close)
	return c, nil
}

// Close releases the client and zeroizes its cached keys. It is safe to call twice.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.envelope_client_free(c.ptr)
		c.ptr = nil
	}
	return nil
}

// acquire read-locks the client and pins the goroutine to its OS thread, so that a failed
// call's detail (kept per thread by the library) is read on the thread that failed; release
// undoes both.
func (c *Client) acquire() (*C.envelope_client, error) {
	c.mu.RLock()
	if c.ptr == nil {
		c.mu.RUnlock()
		return nil, ErrClosed
	}
	runtime.LockOSThread()
	return c.ptr, nil
}

func (c *Client) release() {
	runtime.UnlockOSThread()
	c.mu.RUnlock()
}

// Encrypt encrypts plaintext, bound to aad, into the binary form (for bytea/BLOB columns).
func (c *Client) Encrypt(plaintext, aad []byte) ([]byte, error) {
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	room := c.overhead.Load()
	if room == 0 {
		room = initialOverhead
	}
	out := make([]byte, len(plaintext)+int(room))
	var n C.size_t
	st := C.envelope_encrypt_into(ptr, ptrOf(plaintext), C.size_t(len(plaintext)), ptrOf(aad), C.size_t(len(aad)),
		ptrOf(out), C.size_t(len(out)), &n)
	if st == C.ENVELOPE_BUFFER_TOO_SMALL {
		// A larger header than expected (a new DEK under another KMS key): the library
		// allocates this once.
		var p *C.uint8_t
		st = C.envelope_encrypt(ptr, ptrOf(plaintext), C.size_t(len(plaintext)), ptrOf(aad), C.size_t(len(aad)), &p, &n)
		if st != C.ENVELOPE_OK {
			return nil, lastError(st)
		}
		c.overhead.Store(int64(n) - int64(len(plaintext)))
		return takeBytes(p, n), nil
	}
	if st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	c.overhead.Store(int64(n) - int64(len(plaintext)))
	return out[:n:n], nil
}

// EncryptInto encrypts plaintext into the start of dst and returns the ciphertext's
// length, with no allocation: the library writes the ciphertext in place. When dst is
// too short it returns the length needed and an error matching ErrBufferTooSmall, and
// writes nothing. dst must not overlap plaintext or aad.
func (c *Client) EncryptInto(dst, plaintext, aad []byte) (int, error) {
	return c.into(dst, plaintext, aad, true)
}

// Decrypt decrypts a binary ciphertext; aad must equal the encryption's.
func (c *Client) Decrypt(ciphertext, aad []byte) ([]byte, error) {
	out := make([]byte, len(ciphertext))
	n, err := c.into(out, ciphertext, aad, false)
	if err != nil {
		return nil, err
	}
	return out[:n:n], nil
}

// DecryptInto decrypts a binary ciphertext into the start of dst and returns the
// plaintext's length: the library writes the plaintext straight from the ciphertext, with
// no intermediate copy. A dst as long as the ciphertext always suffices; a shorter one
// may get an error matching ErrBufferTooSmall (with the length needed). On any error no
// plaintext is left in dst. dst must not overlap ciphertext or aad.
func (c *Client) DecryptInto(dst, ciphertext, aad []byte) (int, error) {
	return c.into(dst, ciphertext, aad, false)
}

func (c *Client) into(dst, data, aad []byte, encrypt bool) (int, error) {
	ptr, err := c.acquire()
	if err != nil {
		return 0, err
	}
	defer c.release()
	var n C.size_t
	var st C.envelope_status
	if encrypt {
		st = C.envelope_encrypt_into(ptr, ptrOf(data), C.size_t(len(data)), ptrOf(aad), C.size_t(len(aad)),
			ptrOf(dst), C.size_t(len(dst)), &n)
	} else {
		st = C.envelope_decrypt_into(ptr, ptrOf(data), C.size_t(len(data)), ptrOf(aad), C.size_t(len(aad)),
			ptrOf(dst), C.size_t(len(dst)), &n)
	}
	if st == C.ENVELOPE_BUFFER_TOO_SMALL {
		return int(n), lastError(st)
	}
	if st != C.ENVELOPE_OK {
		return 0, lastError(st)
	}
	return int(n), nil
}

// CryptoProvider names the crypto provider running AES-256-GCM in the linked library:
// "aws-lc-rs" (the default build) or "rustcrypto".
func CryptoProvider() string {
	return C.GoString(C.envelope_crypto_provider())
}

// FIPSMode reports whether the linked library runs on the AWS-LC FIPS 140-3 module (built
// with the fips feature, the module reporting FIPS mode active).
func FIPSMode() bool {
	return C.envelope_fips_mode() == 1
}

func (c *Client) call(fn func(*C.envelope_client, **C.uint8_t, *C.size_t) C.envelope_status) ([]byte, error) {
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	var p *C.uint8_t
	var n C.size_t
	if st := fn(ptr, &p, &n); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	return takeBytes(p, n), nil
}

// EncryptText encrypts into the text form (for text columns): "ev1:...", or "ev3:..." with a
// DEK store.
func (c *Client) EncryptText(plaintext, aad []byte) (string, error) {
	out, err := c.call(func(p *C.envelope_client, o **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_encrypt_text(p, ptrOf(plaintext), C.size_t(len(plaintext)), ptrOf(aad), C.size_t(len(aad)), o, n)
	})
	return string(out), err
}

// DecryptText decrypts the text form.
func (c *Client) DecryptText(ciphertext string, aad []byte) ([]byte, error) {
	text := []byte(ciphertext)
	return c.call(func(p *C.envelope_client, o **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_decrypt_text(p, ptrOf(text), C.size_t(len(text)), ptrOf(aad), C.size_t(len(aad)), o, n)
	})
}

// Reencrypt decrypts and encrypts again under a new data key (same AAD).
func (c *Client) Reencrypt(ciphertext, aad []byte) ([]byte, error) {
	return c.call(func(p *C.envelope_client, o **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_reencrypt(p, ptrOf(ciphertext), C.size_t(len(ciphertext)), ptrOf(aad), C.size_t(len(aad)), o, n)
	})
}

// Rewrap moves a ciphertext (binary, or text form as bytes) to the KEK's current version,
// header only. changed is false when it was already current (the input comes back).
func (c *Client) Rewrap(ciphertext []byte) (out []byte, changed bool, err error) {
	var flag C.bool
	out, err = c.call(func(p *C.envelope_client, o **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_rewrap(p, ptrOf(ciphertext), C.size_t(len(ciphertext)), o, n, &flag)
	})
	return out, bool(flag), err
}

// Stats returns the client's counters (KMS calls by operation, cache hits and misses, ...).
func (c *Client) Stats() (map[string]any, error) {
	out, err := c.call(func(p *C.envelope_client, o **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_client_stats_json(p, o, n)
	})
	if err != nil {
		return nil, err
	}
	var stats map[string]any
	return stats, json.Unmarshal(out, &stats)
}

// Inspect reads the header of a ciphertext (binary or text form) without any key.
func Inspect(ciphertext []byte) (HeaderInfo, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p *C.uint8_t
	var n C.size_t
	var info HeaderInfo
	if st := C.envelope_inspect_json(ptrOf(ciphertext), C.size_t(len(ciphertext)), &p, &n); st != C.ENVELOPE_OK {
		return info, lastError(st)
	}
	return info, json.Unmarshal(takeBytes(p, n), &info)
}

// ModuleVersion is this Go module's version: the project's one version, which the linked
// native library must report too (see Version).
const ModuleVersion = "0.1.0"

// Version is the version of the linked native library.
func Version() string {
	return C.GoString(C.envelope_version())
}

// ImportDEKStoreRows copies DEK store rows, ids kept, into the store storeURI names (created
// if missing): rowsJSON is a JSON array in the documented row form (docs/FORMAT.md, "DEK
// store"). An id the store already has fails with an error matching ErrDEKStore (rows before
// it stay imported). It returns the number of rows imported.
func ImportDEKStoreRows(storeURI string, rowsJSON []byte) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	u := []byte(storeURI)
	var n C.size_t
	if st := C.envelope_dek_store_import_json(ptrOf(u), C.size_t(len(u)), ptrOf(rowsJSON), C.size_t(len(rowsJSON)), &n); st != C.ENVELOPE_OK {
		return int(n), lastError(st)
	}
	return int(n), nil
}

// CreateLocalKeyring creates a local keyring file (mode 0600) holding keyID at version 1
// (the development KMS).
func CreateLocalKeyring(path, keyID string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, k := []byte(path), []byte(keyID)
	if st := C.envelope_local_keyring_create(ptrOf(p), C.size_t(len(p)), ptrOf(k), C.size_t(len(k))); st != C.ENVELOPE_OK {
		return lastError(st)
	}
	return nil
}

// RotateLocalKey rotates a local keyring key and returns the new primary version.
func RotateLocalKey(path, keyID string) (uint32, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, k := []byte(path), []byte(keyID)
	var v C.uint32_t
	if st := C.envelope_local_keyring_rotate(ptrOf(p), C.size_t(len(p)), ptrOf(k), C.size_t(len(k)), &v); st != C.ENVELOPE_OK {
		return 0, lastError(st)
	}
	return uint32(v), nil
}

// DestroyLocalKeyVersion destroys a non-primary version of a local key (crypto-shredding).
func DestroyLocalKeyVersion(path, keyID string, version uint32) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, k := []byte(path), []byte(keyID)
	if st := C.envelope_local_keyring_destroy_version(ptrOf(p), C.size_t(len(p)), ptrOf(k), C.size_t(len(k)), C.uint32_t(version)); st != C.ENVELOPE_OK {
		return lastError(st)
	}
	return nil
}

func (i HeaderInfo) String() string {
	if i.FormatVersion == 2 {
		return fmt.Sprintf("%s compact form under DEK %d of the DEK store (%d bytes of overhead)", i.Suite, i.DEKID, i.Overhead)
	}
	return fmt.Sprintf("%s under %s://%s version %q (%d bytes of overhead)", i.Suite, i.Provider, i.KeyID, i.KeyVersion, i.Overhead)
}
