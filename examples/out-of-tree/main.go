// A Go program outside the repository: its go.mod requires the envelope module (replaced by
// a local path in the test), and cgo finds the C library through pkg-config.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	envelope "github.com/envelope-sdk/envelope/bindings/go"
)

func main() {
	dir, err := os.MkdirTemp("", "envelope-out-of-tree")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keyring.json")
	if err := envelope.CreateLocalKeyring(path, "default"); err != nil {
		panic(err)
	}
	c, err := envelope.Open("local://"+path, nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	aad := []byte("patients.ssn#42")
	ct, err := c.Encrypt([]byte("123-45-6789"), aad)
	if err != nil {
		panic(err)
	}
	pt, err := c.Decrypt(ct, aad)
	if err != nil || !bytes.Equal(pt, []byte("123-45-6789")) {
		panic(fmt.Sprintf("round trip: %q %v", pt, err))
	}
	if envelope.ModuleVersion != envelope.Version() {
		panic(fmt.Sprintf("module %s, library %s", envelope.ModuleVersion, envelope.Version()))
	}
	fmt.Printf("round trip ok: %d-byte ciphertext, module %s\n", len(ct), envelope.ModuleVersion)
}
