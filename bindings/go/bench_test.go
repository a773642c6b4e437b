package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"path/filepath"
	"testing"
)

// The floor: crypto/aes GCM with a random nonce, as a Go program would seal a field.
func BenchmarkFloorAESGCMEncrypt64(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	field := make([]byte, 64)
	nonce := make([]byte, 12)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rand.Read(nonce)
		out := gcm.Seal(append([]byte{}, nonce...), nonce, field, aad)
		_ = out
	}
}

func BenchmarkFloorAESGCMDecrypt64(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	sealed := gcm.Seal(nil, nonce, make([]byte, 64), aad)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := gcm.Open(nil, nonce, sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
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

func BenchmarkEnvelopeEncrypt64(b *testing.B) {
	c := benchClient(b)
	field := make([]byte, 64)
	c.Encrypt(field, aad)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Encrypt(field, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeDecrypt64(b *testing.B) {
	c := benchClient(b)
	ct, _ := c.Encrypt(make([]byte, 64), aad)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Decrypt(ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeEncryptBatch1000x64(b *testing.B) {
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
