package envelope

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func streamData(n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(i*31 + i/4096)
	}
	return out
}

func TestStreamRoundTripsThroughReaderAndReaderAt(t *testing.T) {
	c, _ := testClient(t)
	for _, size := range []int{0, 1, 4095, 4096, 4097, 3*4096 + 100, 300000} {
		plain := streamData(size)
		var sealed bytes.Buffer
		w, err := c.NewWriter(&sealed, []byte("aad"), &StreamOptions{SegmentSize: 4096, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		for at := 0; at < size; at += 3001 {
			end := at + 3001
			if end > size {
				end = size
			}
			if _, err := w.Write(plain[at:end]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := c.NewReader(bytes.NewReader(sealed.Bytes()), []byte("aad"), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: reader: %v", size, err)
		}
		ra, err := c.NewReaderAt(bytes.NewReader(sealed.Bytes()), int64(sealed.Len()), []byte("aad"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ra.Size() != int64(size) {
			t.Fatalf("size %d != %d", ra.Size(), size)
		}
		got, err = io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: reader at: %v", size, err)
		}
		if size > 5000 {
			part := make([]byte, 20)
			if _, err := ra.ReadAt(part, 4090); err != nil || !bytes.Equal(part, plain[4090:4110]) {
				t.Fatalf("range across a boundary: %v", err)
			}
		}
		ra.Close()
	}
}

func TestStreamCutsAndFlipsAreRefused(t *testing.T) {
	c, _ := testClient(t)
	plain := streamData(5 * 4096)
	var sealed bytes.Buffer
	w, _ := c.NewWriter(&sealed, nil, &StreamOptions{SegmentSize: 4096})
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := sealed.Bytes()
	header := len(s) - 5*(4096+16)
	cut := s[:header+3*(4096+16)]
	r, err := c.NewReader(bytes.NewReader(cut), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrTruncated) || !bytes.HasPrefix(plain, got) {
		t.Fatalf("cut: %v after %d bytes", err, len(got))
	}
	if _, err := c.NewReaderAt(bytes.NewReader(s[:header]), int64(header), nil, nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("header only: %v", err)
	}
	flipped := append([]byte(nil), s...)
	flipped[header+2*(4096+16)+9] ^= 1
	ra, err := c.NewReaderAt(bytes.NewReader(flipped), int64(len(flipped)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3*4096)
	n, err := ra.ReadAt(buf, 0)
	if !errors.Is(err, ErrDecryptionFailed) || n != 2*4096 || !bytes.Equal(buf[:n], plain[:n]) {
		t.Fatalf("flip: %d bytes, %v", n, err)
	}
	if _, err := c.NewReader(bytes.NewReader(s), []byte("other"), nil); err != nil {
		t.Fatal(err)
	}
	r2, _ := c.NewReader(bytes.NewReader(s), []byte("other"), nil)
	if _, err := io.ReadAll(r2); !errors.Is(err, ErrDecryptionFailed) {
		t.Fatalf("wrong AAD: %v", err)
	}
	var abandoned bytes.Buffer
	w2, _ := c.NewWriter(&abandoned, nil, &StreamOptions{SegmentSize: 4096})
	w2.Write(streamData(300000))
	w2.Abandon()
	r3, err := c.NewReader(bytes.NewReader(abandoned.Bytes()), nil, nil)
	if err == nil {
		_, err = io.ReadAll(r3)
	}
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("abandoned: %v", err)
	}
}

// The CLI (ENVELOPE_CLI, set by the test command) reads the Go package's streams and the
// other way round.
func TestStreamInteropWithTheCLI(t *testing.T) {
	cli := os.Getenv("ENVELOPE_CLI")
	if cli == "" {
		t.Fatal("ENVELOPE_CLI is not set: run scripts/test.sh, which builds and exports it")
	}
	c, uri := testClient(t)
	dir := t.TempDir()
	plain := streamData(200000)
	goStream := filepath.Join(dir, "go.ev")
	f, _ := os.Create(goStream)
	w, _ := c.NewWriter(f, []byte("x"), nil)
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(cli, "decrypt", "--key", uri, "-i", goStream, "--aad", "x").Output()
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("the CLI reading Go: %v", err)
	}
	src := filepath.Join(dir, "p")
	os.WriteFile(src, plain, 0o600)
	cliStream := filepath.Join(dir, "cli.ev")
	if err := exec.Command(cli, "encrypt", "--key", uri, "-i", src, "-o", cliStream, "--form", "stream", "--aad", "x").Run(); err != nil {
		t.Fatal(err)
	}
	sealed, _ := os.ReadFile(cliStream)
	ra, err := c.NewReaderAt(bytes.NewReader(sealed), int64(len(sealed)), []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(plain))
	if _, err := ra.ReadAt(got, 0); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Go reading the CLI: %v", err)
	}
}

// testClient is a client over a fresh keyring, and the keyring's URI.
func testClient(t *testing.T) (*Client, string) {
	_, uri := newKeyring(t)
	return open(t, uri, nil), uri
}
