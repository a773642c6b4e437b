package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newKeyring(t *testing.T) (path, uri string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "keyring.json")
	if err := CreateLocalKeyring(path, "default"); err != nil {
		t.Fatal(err)
	}
	return path, "local://" + path
}

func open(t *testing.T, uri string, opts *Options) *Client {
	t.Helper()
	c, err := Open(uri, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var aad = []byte("patients.ssn#42")

func TestRoundTripAndErrors(t *testing.T) {
	_, uri := newKeyring(t)
	c := open(t, uri, nil)
	ct, err := c.Encrypt([]byte("123-45-6789"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != 11+138 || !bytes.HasPrefix(ct, []byte("EV\x01")) {
		t.Fatalf("ciphertext of %d bytes", len(ct))
	}
	pt, err := c.Decrypt(ct, aad)
	if err != nil || string(pt) != "123-45-6789" {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
	if _, err := c.Decrypt(ct, []byte("patients.ssn#43")); !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("wrong AAD: %v", err)
	}
	if _, err := c.Decrypt(ct[:30], aad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	} else if e := new(Error); !errors.As(err, &e) || e.Retryable() {
		t.Fatalf("malformed is a non-retryable *Error: %v", err)
	}
	bad := append([]byte{}, ct...)
	bad[2] = 9
	if _, err := c.Decrypt(bad, aad); !errors.Is(err, ErrUnsupportedFormatVersion) {
		t.Fatalf("version: %v", err)
	}
	if errors.Is(ErrDecryptionFailed, ErrMalformed) {
		t.Fatal("sentinels must differ")
	}
	empty, err := c.Encrypt(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := c.Decrypt(empty, nil); err != nil || len(pt) != 0 {
		t.Fatalf("empty: %q %v", pt, err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	ct, err = c.Encrypt(big, aad)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := c.Decrypt(ct, aad); err != nil || !bytes.Equal(pt, big) {
		t.Fatalf("1 MiB: %v", err)
	}
}

func TestModuleAndLibraryVersionsAgree(t *testing.T) {
	if ModuleVersion != Version() {
		t.Fatalf("module %s, native library %s: one version for the project", ModuleVersion, Version())
	}
}

func TestCallerBuffers(t *testing.T) {
	_, uri := newKeyring(t)
	c := open(t, uri, nil)
	if CryptoProvider() != "aws-lc-rs" || FIPSMode() {
		t.Fatalf("provider %q fips %v", CryptoProvider(), FIPSMode())
	}
	buf := make([]byte, 512)
	n, err := c.EncryptInto(buf, []byte("123-45-6789"), aad)
	if err != nil || n != 11+138 {
		t.Fatalf("EncryptInto: %d %v", n, err)
	}
	ct := append([]byte{}, buf[:n]...)
	plain := make([]byte, 64)
	m, err := c.DecryptInto(plain, ct, aad)
	if err != nil || string(plain[:m]) != "123-45-6789" {
		t.Fatalf("DecryptInto: %q %v", plain[:m], err)
	}
	small := bytes.Repeat([]byte{0xaa}, 10)
	if need, err := c.DecryptInto(small, ct, aad); !errors.Is(err, ErrBufferTooSmall) || need != 11 {
		t.Fatalf("short buffer: %d %v", need, err)
	}
	if !bytes.Equal(small, bytes.Repeat([]byte{0xaa}, 10)) {
		t.Fatal("a short buffer must be left untouched")
	}
	if need, err := c.EncryptInto(make([]byte, 20), []byte("123-45-6789"), aad); !errors.Is(err, ErrBufferTooSmall) || need != 11+138 {
		t.Fatalf("short encrypt buffer: %d %v", need, err)
	}
	plain = make([]byte, 64)
	if _, err := c.DecryptInto(plain, ct, []byte("another row")); !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("wrong AAD: %v", err)
	}
	if !bytes.Equal(plain, make([]byte, 64)) {
		t.Fatal("no plaintext may be left after a failed decryption")
	}
	if _, err := c.DecryptInto(ct[10:], ct, aad); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("overlapping buffers: %v", err)
	}
}

func TestJunkHeadersCostBoundedKMSCalls(t *testing.T) {
	_, uri := newKeyring(t)
	w := open(t, uri, nil)
	ct, err := w.Encrypt([]byte("123-45-6789"), aad)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(ct)
	if err != nil {
		t.Fatal(err)
	}
	junk := func(i int) []byte {
		j := append([]byte{}, ct...)
		for k := info.HeaderLen - 60; k < info.HeaderLen; k++ {
			j[k] = byte(i*7 + k)
		}
		return j
	}
	r := open(t, uri, &Options{MaxUnwrapsPerSecond: 5})
	throttled := 0
	for i := 0; i < 200; i++ {
		_, err := r.Decrypt(junk(i), aad)
		switch {
		case errors.Is(err, ErrThrottled):
			throttled++
		case errors.Is(err, ErrDecryptionFailed):
		default:
			t.Fatalf("junk %d: %v", i, err)
		}
	}
	stats, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if calls, _ := stats["kms_unwrap_calls"].(float64); calls > 15 || throttled < 150 {
		t.Fatalf("%v unwrap calls, %d throttled", calls, throttled)
	}
}

func TestTextInspectAndStats(t *testing.T) {
	_, uri := newKeyring(t)
	c := open(t, uri, &Options{Suite: XChaCha20Poly1305, EncryptionContext: map[string]string{"app": "billing"}})
	text, err := c.EncryptText([]byte("ada@example.org"), aad)
	if err != nil || text[:4] != "ev1:" {
		t.Fatalf("%q %v", text, err)
	}
	pt, err := c.DecryptText(text, aad)
	if err != nil || string(pt) != "ada@example.org" {
		t.Fatalf("%q %v", pt, err)
	}
	info, err := Inspect([]byte(text))
	if err != nil || info.Suite != "XChaCha20-Poly1305" || info.KeyID != "default" || info.KeyVersion != "1" {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := Inspect([]byte("nope")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("inspect garbage: %v", err)
	}
	other := open(t, uri, &Options{EncryptionContext: map[string]string{"app": "other"}})
	if _, err := other.DecryptText(text, aad); !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("other context: %v", err)
	}
	stats, err := c.Stats()
	if err != nil || stats["kms_generate_calls"].(float64) != 1 {
		t.Fatalf("%v %v", stats, err)
	}
}

func TestRotateRewrapDestroy(t *testing.T) {
	path, uri := newKeyring(t)
	w := open(t, uri, nil)
	a, _ := w.Encrypt([]byte("alpha"), []byte("a"))
	same, changed, err := w.Rewrap(a)
	if err != nil || changed || !bytes.Equal(same, a) {
		t.Fatalf("no-op rewrap: %v %v", changed, err)
	}
	if v, err := RotateLocalKey(path, "default"); err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	c := open(t, uri, nil)
	moved, changed, err := c.Rewrap(a)
	if err != nil || !changed {
		t.Fatalf("rewrap: %v %v", changed, err)
	}
	if !bytes.Equal(moved[len(moved)-21:], a[len(a)-21:]) {
		t.Fatal("body changed")
	}
	if info, _ := Inspect(moved); info.KeyVersion != "2" {
		t.Fatalf("version %q", info.KeyVersion)
	}
	if err := DestroyLocalKeyVersion(path, "default", 1); err != nil {
		t.Fatal(err)
	}
	r := open(t, uri, nil)
	if _, err := r.Decrypt(a, []byte("a")); !errors.Is(err, ErrKeyVersionDestroyed) {
		t.Fatalf("destroyed: %v", err)
	}
	if pt, err := r.Decrypt(moved, []byte("a")); err != nil || string(pt) != "alpha" {
		t.Fatalf("rewrapped: %q %v", pt, err)
	}
	again, err := r.Reencrypt(moved, []byte("a"))
	if err != nil || bytes.Equal(again[16:48], moved[16:48]) {
		t.Fatalf("reencrypt: %v", err)
	}
}

func TestBatches(t *testing.T) {
	_, uri := newKeyring(t)
	c := open(t, uri, nil)
	var values, aads [][]byte
	for i := 0; i < 100; i++ {
		values = append(values, []byte(fmt.Sprintf("value %d", i)))
		aads = append(aads, []byte(fmt.Sprintf("row=%d", i)))
	}
	cts, err := c.EncryptBatch(values, aads)
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.DecryptBatch(cts, aads)
	if err != nil {
		t.Fatal(err)
	}
	for i := range values {
		if !bytes.Equal(back[i], values[i]) {
			t.Fatalf("item %d", i)
		}
	}
	shared, err := c.EncryptBatchSharedAAD(values, []byte("col"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecryptBatchSharedAAD(shared, []byte("col")); err != nil {
		t.Fatal(err)
	}
	cts[1] = append(append([]byte{}, cts[1][:len(cts[1])-1]...), cts[1][len(cts[1])-1]^1)
	_, err = c.DecryptBatch(cts[:3], aads[:3])
	var be *BatchError
	if !errors.As(err, &be) || len(be.Errors) != 1 || !errors.Is(be.Errors[1], ErrDecryptionFailed) {
		t.Fatalf("batch error: %v", err)
	}
	if !errors.Is(err, ErrDecryptionFailed) || !bytes.Equal(be.Results[0], values[0]) || be.Results[1] != nil {
		t.Fatalf("batch results: %v", err)
	}
	if out, err := c.EncryptBatch(nil, nil); err != nil || len(out) != 0 {
		t.Fatal("empty batch")
	}
	if _, err := c.EncryptBatch(values[:2], aads[:1]); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("mismatched AADs: %v", err)
	}
}

func TestConfigurationErrorsAndClose(t *testing.T) {
	_, uri := newKeyring(t)
	if _, err := Open("s3://bucket", nil); !errors.Is(err, ErrInvalidKeyURI) {
		t.Fatalf("uri: %v", err)
	}
	// Every backend is in the default build: the GCP backend's own URI check answers.
	if _, err := Open("gcp-kms://projects/p/locations/l/keyRings/r", nil); !errors.Is(err, ErrInvalidKeyURI) || !strings.Contains(err.Error(), "cryptoKeys/K") {
		t.Fatalf("gcp uri: %v", err)
	}
	if _, err := Open(uri, &Options{MaxMessages: 1<<32 + 1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("config: %v", err)
	}
	c, err := Open(uri, &Options{DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Encrypt([]byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := c.Stats(); s["kms_generate_calls"].(float64) != 3 {
		t.Fatalf("disabled cache: %v", s)
	}
	c.Close()
	c.Close()
	if _, err := c.Encrypt([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if Version() != "0.1.0" {
		t.Fatalf("version %q", Version())
	}
}

func TestConcurrentUse(t *testing.T) {
	_, uri := newKeyring(t)
	c := open(t, uri, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				a := []byte(fmt.Sprintf("%d:%d", g, i))
				ct, err := c.Encrypt(a, a)
				if err == nil {
					var pt []byte
					pt, err = c.Decrypt(ct, a)
					if err == nil && !bytes.Equal(pt, a) {
						err = fmt.Errorf("mismatch")
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() { // failures on other goroutines keep their own error details
		defer wg.Done()
		for i := 0; i < 200; i++ {
			if _, err := c.Decrypt([]byte("EV\x07"), nil); !errors.Is(err, ErrUnsupportedFormatVersion) {
				errs <- fmt.Errorf("concurrent failure: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
