package envelope

/*
#include <stdlib.h>
#include "envelope.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// StreamOptions configure a stream; nil or zero fields keep the defaults.
type StreamOptions struct {
	// SegmentSize is the plaintext bytes per segment (encryption only): 4096 to 16777216,
	// 0 for the default 65536.
	SegmentSize uint32
	// Threads seal or open segments in parallel (0: the CPUs, at most 4).
	Threads int
}

func (o *StreamOptions) threads() C.uint32_t {
	if o == nil || o.Threads <= 0 {
		n := runtime.NumCPU()
		if n > 4 {
			n = 4
		}
		return C.uint32_t(n)
	}
	return C.uint32_t(o.Threads)
}

func (o *StreamOptions) segmentSize() C.uint32_t {
	if o == nil {
		return 0
	}
	return C.uint32_t(o.SegmentSize)
}

// StreamWriter encrypts everything written to it into one stream (format version 4: large
// files and objects in constant memory; docs/FORMAT.md, "Streaming form") written to the
// underlying io.Writer. Close seals the final segment; a StreamWriter that is not closed
// leaves a stream every reader refuses as truncated (ErrTruncated). Not safe for
// concurrent use.
type StreamWriter struct {
	c   *Client
	enc *C.envelope_stream_encryptor
	w   io.Writer
	err error
}

// NewWriter starts a stream bound to aad, written to w (one KMS call when the client's
// DEK is not cached). The header is written with the first segments.
func (c *Client) NewWriter(w io.Writer, aad []byte, opts *StreamOptions) (*StreamWriter, error) {
	ptr, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	var enc *C.envelope_stream_encryptor
	st := C.envelope_stream_encryptor_new(ptr, ptrOf(aad), C.size_t(len(aad)), opts.segmentSize(), opts.threads(), &enc)
	if st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	s := &StreamWriter{c: c, enc: enc, w: w}
	runtime.SetFinalizer(s, (*StreamWriter).free)
	return s, nil
}

func (s *StreamWriter) free() {
	if s.enc != nil {
		C.envelope_stream_encryptor_free(s.enc)
		s.enc = nil
	}
}

// Write encrypts p. Sealed segments go to the underlying writer as soon as the bytes after
// them show they are not the final one.
func (s *StreamWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.enc == nil {
		return 0, errors.New("envelope: write to a closed stream")
	}
	out, err := s.step(func(out **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_stream_encrypt_update(s.enc, ptrOf(p), C.size_t(len(p)), out, n)
	})
	if err == nil && len(out) > 0 {
		_, err = s.w.Write(out)
	}
	if err != nil {
		s.err = err
		return 0, err
	}
	return len(p), nil
}

func (s *StreamWriter) step(fn func(**C.uint8_t, *C.size_t) C.envelope_status) ([]byte, error) {
	if _, err := s.c.acquire(); err != nil {
		return nil, err
	}
	defer s.c.release()
	var p *C.uint8_t
	var n C.size_t
	if st := fn(&p, &n); st != C.ENVELOPE_OK {
		return nil, lastError(st)
	}
	return takeBytes(p, n), nil
}

// Close seals the final segment and writes the rest of the stream. It does not close the
// underlying writer. Calling it again returns nil.
func (s *StreamWriter) Close() error {
	if s.enc == nil {
		return s.err
	}
	defer s.free()
	if s.err != nil {
		return s.err
	}
	out, err := s.step(func(out **C.uint8_t, n *C.size_t) C.envelope_status {
		return C.envelope_stream_encrypt_finish(s.enc, out, n)
	})
	if err == nil && len(out) > 0 {
		_, err = s.w.Write(out)
	}
	s.err = err
	return err
}

// Abandon stops without sealing the final segment: what was written is a truncated stream
// that no reader accepts.
func (s *StreamWriter) Abandon() {
	s.free()
	if s.err == nil {
		s.err = errors.New("envelope: the stream was abandoned")
	}
}

// decryptor opens a stream's header through the client.
func (c *Client) decryptor(header, aad []byte, opts *StreamOptions) (*C.envelope_stream_decryptor, uint32, int, error) {
	ptr, err := c.acquire()
	if err != nil {
		return nil, 0, 0, err
	}
	defer c.release()
	var dec *C.envelope_stream_decryptor
	st := C.envelope_stream_decryptor_new(ptr, ptrOf(header), C.size_t(len(header)), ptrOf(aad), C.size_t(len(aad)), opts.threads(), &dec)
	if st != C.ENVELOPE_OK {
		return nil, 0, 0, lastError(st)
	}
	var size C.uint32_t
	var hlen C.size_t
	C.envelope_stream_decryptor_layout(dec, &size, &hlen)
	return dec, uint32(size), int(hlen), nil
}

// headerLen reads the header length from a stream's first bytes.
func headerLen(prefix []byte) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n C.size_t
	if st := C.envelope_stream_header_len(ptrOf(prefix), C.size_t(len(prefix)), &n); st != C.ENVELOPE_OK {
		return 0, lastError(st)
	}
	return int(n), nil
}

// streamPrefixLen is how many bytes of a stream give its header's length.
const streamPrefixLen = 10

// StreamReader decrypts a stream read in order from an io.Reader (a pipe, an HTTP body).
// Only authenticated segments are returned; a segment that fails is an error (matching
// ErrDecryptionFailed, ErrTruncated or ErrMalformed) before any of its bytes. Not safe for
// concurrent use.
type StreamReader struct {
	c    *Client
	dec  *C.envelope_stream_decryptor
	r    io.Reader
	buf  []byte
	done bool
	err  error
}

// NewReader reads the stream's header from r and opens it (one KMS unwrap when the DEK is
// not cached).
func (c *Client) NewReader(r io.Reader, aad []byte, opts *StreamOptions) (*StreamReader, error) {
	prefix := make([]byte, streamPrefixLen)
	if _, err := io.ReadFull(r, prefix); err != nil {
		return nil, fmt.Errorf("envelope: reading the stream header: %w", err)
	}
	n, err := headerLen(prefix)
	if err != nil {
		return nil, err
	}
	header := make([]byte, n)
	copy(header, prefix)
	if _, err := io.ReadFull(r, header[len(prefix):]); err != nil {
		return nil, fmt.Errorf("envelope: reading the stream header: %w", err)
	}
	dec, _, _, err := c.decryptor(header, aad, opts)
	if err != nil {
		return nil, err
	}
	s := &StreamReader{c: c, dec: dec, r: r}
	runtime.SetFinalizer(s, (*StreamReader).Close)
	return s, nil
}

func (s *StreamReader) feed(chunk []byte, end bool) error {
	if _, err := s.c.acquire(); err != nil {
		return err
	}
	defer s.c.release()
	var p *C.uint8_t
	var n C.size_t
	var st C.envelope_status
	if end {
		st = C.envelope_stream_decrypt_finish(s.dec, &p, &n)
	} else {
		st = C.envelope_stream_decrypt_update(s.dec, ptrOf(chunk), C.size_t(len(chunk)), &p, &n)
	}
	if st != C.ENVELOPE_OK {
		return lastError(st)
	}
	s.buf = append(s.buf, takeBytes(p, n)...)
	return nil
}

// Read returns authenticated plaintext; io.EOF after the final segment.
func (s *StreamReader) Read(p []byte) (int, error) {
	if s.dec == nil {
		return 0, errors.New("envelope: read from a closed stream")
	}
	chunk := make([]byte, 1<<20)
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		n, rerr := s.r.Read(chunk)
		if n > 0 {
			if err := s.feed(chunk[:n], false); err != nil {
				s.err = err
				return 0, err
			}
		}
		if rerr == io.EOF {
			s.done = true
			if err := s.feed(nil, true); err != nil {
				s.err = err
				return 0, err
			}
		} else if rerr != nil {
			s.err = rerr
			return 0, rerr
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Close releases the reader (not the underlying io.Reader).
func (s *StreamReader) Close() error {
	if s.dec != nil {
		C.envelope_stream_decryptor_free(s.dec)
		s.dec = nil
	}
	return nil
}

// StreamReaderAt decrypts any range of a stream held by an io.ReaderAt (a file, a ranged
// object reader), reading only the segments the range covers. Safe for concurrent ReadAt
// calls.
type StreamReaderAt struct {
	c           *Client
	mu          sync.RWMutex
	dec         *C.envelope_stream_decryptor
	r           io.ReaderAt
	size        int64
	headerLen   int64
	segmentSize int64
	count       int64
	plainLen    int64
}

// NewReaderAt opens the stream of size bytes held by r (one KMS unwrap when the DEK is not
// cached). The stream's length decides which segment is final.
func (c *Client) NewReaderAt(r io.ReaderAt, size int64, aad []byte, opts *StreamOptions) (*StreamReaderAt, error) {
	prefix := make([]byte, streamPrefixLen)
	if _, err := r.ReadAt(prefix, 0); err != nil {
		return nil, fmt.Errorf("envelope: reading the stream header: %w", err)
	}
	n, err := headerLen(prefix)
	if err != nil {
		return nil, err
	}
	header := make([]byte, n)
	if _, err := r.ReadAt(header, 0); err != nil {
		return nil, fmt.Errorf("envelope: reading the stream header: %w", err)
	}
	dec, segSize, hlen, err := c.decryptor(header, aad, opts)
	if err != nil {
		return nil, err
	}
	s := &StreamReaderAt{c: c, dec: dec, r: r, size: size, headerLen: int64(hlen), segmentSize: int64(segSize)}
	runtime.SetFinalizer(s, (*StreamReaderAt).Close)
	if _, err := c.acquire(); err != nil {
		s.Close()
		return nil, err
	}
	var count C.uint64_t
	st := C.envelope_stream_segment_count(dec, C.uint64_t(size), &count)
	var cerr error
	if st != C.ENVELOPE_OK {
		cerr = lastError(st)
	}
	c.release()
	if cerr != nil {
		s.Close()
		return nil, cerr
	}
	s.count = int64(count)
	s.plainLen = size - s.headerLen - s.count*16
	return s, nil
}

// Size is the plaintext length.
func (s *StreamReaderAt) Size() int64 { return s.plainLen }

// ReadAt decrypts len(p) plaintext bytes from off (io.EOF when the stream ends first).
func (s *StreamReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.dec == nil {
		return 0, errors.New("envelope: read from a closed stream")
	}
	if off < 0 {
		return 0, errors.New("envelope: negative offset")
	}
	n := 0
	sealed := make([]byte, s.segmentSize+16)
	plain := make([]byte, s.segmentSize)
	for n < len(p) && off+int64(n) < s.plainLen {
		pos := off + int64(n)
		index := pos / s.segmentSize
		last := index == s.count-1
		start := s.headerLen + index*(s.segmentSize+16)
		length := s.segmentSize + 16
		if last {
			length = s.size - start
		}
		if _, err := s.r.ReadAt(sealed[:length], start); err != nil && err != io.EOF {
			return n, err
		}
		got, err := s.open(index, last, sealed[:length], plain)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], plain[pos-index*s.segmentSize:got])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *StreamReaderAt) open(index int64, last bool, sealed, plain []byte) (int, error) {
	if _, err := s.c.acquire(); err != nil {
		return 0, err
	}
	defer s.c.release()
	var n C.size_t
	st := C.envelope_stream_decrypt_segment(s.dec, C.uint64_t(index), C.bool(last), ptrOf(sealed), C.size_t(len(sealed)),
		ptrOf(plain), C.size_t(len(plain)), &n)
	if st != C.ENVELOPE_OK {
		return 0, lastError(st)
	}
	return int(n), nil
}

// Close releases the reader (not the underlying io.ReaderAt).
func (s *StreamReaderAt) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dec != nil {
		C.envelope_stream_decryptor_free(s.dec)
		s.dec = nil
	}
	return nil
}
