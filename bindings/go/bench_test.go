package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
)

// Benchmarks per size: the floor (crypto/aes GCM with a fresh crypto/rand nonce, as a Go
// program would seal a field, and Open), then the envelope Client's allocating and
// caller-buffer forms. scripts/bench-go.py runs them in several processes and prints the
// ratios to the floor of the same run.

var benchSizes = []int{64, 1 << 20}

func floorGCM(b *testing.B) cipher.AEAD {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return gcm
}

func benchClient(b *testing.B) *Client {
	path := filepath.Join(b.TempDir(), "keyring.json")
	if err := CreateLocalKeyring(path, "default"); err != nil {
		b.Fatal(err)
	}
	c, err := Open("local://"+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkEncrypt(b *testing.B) {
	for _, size := range benchSizes {
		field := make([]byte, size)
		b.Run(fmt.Sprintf("size=%d/floor", size), func(b *testing.B) {
			gcm := floorGCM(b)
			nonce := make([]byte, 12)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				rand.Read(nonce)
				_ = gcm.Seal(append(make([]byte, 0, 12+size+16), nonce...), nonce, field, aad)
			}
		})
		b.Run(fmt.Sprintf("size=%d/envelope", size), func(b *testing.B) {
			c := benchClient(b)
			c.Encrypt(field, aad)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Encrypt(field, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%d/envelope-into", size), func(b *testing.B) {
			c := benchClient(b)
			dst := make([]byte, size+4096)
			c.EncryptInto(dst, field, aad)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.EncryptInto(dst, field, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	for _, size := range benchSizes {
		field := make([]byte, size)
		b.Run(fmt.Sprintf("size=%d/floor", size), func(b *testing.B) {
			gcm := floorGCM(b)
			nonce := make([]byte, 12)
			rand.Read(nonce)
			sealed := gcm.Seal(nil, nonce, field, aad)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := gcm.Open(nil, nonce, sealed, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%d/envelope", size), func(b *testing.B) {
			c := benchClient(b)
			ct, _ := c.Encrypt(field, aad)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Decrypt(ct, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%d/envelope-into", size), func(b *testing.B) {
			c := benchClient(b)
			ct, _ := c.Encrypt(field, aad)
			dst := make([]byte, len(ct))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.DecryptInto(dst, ct, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncryptBatch1000x64(b *testing.B) {
	c := benchClient(b)
	fields := make([][]byte, 1000)
	for i := range fields {
		fields[i] = make([]byte, 64)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.EncryptBatchSharedAAD(fields, aad); err != nil {
			b.Fatal(err)
		}
	}
}
