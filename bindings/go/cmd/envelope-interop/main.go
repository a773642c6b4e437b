// Command envelope-interop encrypts or decrypts one value with the Go package, for the
// cross-language test: `envelope-interop encrypt URI AAD_HEX PLAINTEXT_HEX` prints the
// ciphertext in hex; `envelope-interop decrypt URI AAD_HEX CIPHERTEXT_HEX` prints the
// plaintext in hex. A fifth argument names a DEK store: encryption then writes the compact
// form.
package main

import (
	"encoding/hex"
	"fmt"
	"os"

	envelope "github.com/envelope-sdk/envelope/bindings/go"
)

func main() {
	if (len(os.Args) != 5 && len(os.Args) != 6) || (os.Args[1] != "encrypt" && os.Args[1] != "decrypt") {
		fmt.Fprintln(os.Stderr, "usage: envelope-interop encrypt|decrypt URI AAD_HEX DATA_HEX [DEK_STORE_URI]")
		os.Exit(2)
	}
	aad, err1 := hex.DecodeString(os.Args[3])
	data, err2 := hex.DecodeString(os.Args[4])
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "AAD and data must be hex")
		os.Exit(2)
	}
	var opts *envelope.Options
	if len(os.Args) == 6 {
		opts = &envelope.Options{DEKStore: os.Args[5]}
	}
	c, err := envelope.Open(os.Args[2], opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	var out []byte
	if os.Args[1] == "encrypt" {
		out, err = c.Encrypt(data, aad)
	} else {
		out, err = c.Decrypt(data, aad)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(hex.EncodeToString(out))
}
