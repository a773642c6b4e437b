// Command envelope-interop encrypts or decrypts one value with the Go package, for the
// cross-language test: `envelope-interop encrypt URI AAD_HEX PLAINTEXT_HEX` prints the
// ciphertext in hex; `envelope-interop decrypt URI AAD_HEX CIPHERTEXT_HEX` prints the
// plaintext in hex. A fifth argument names a DEK store: encryption then writes the compact
// form. `envelope-interop stream-encrypt|stream-decrypt URI AAD_HEX IN_FILE OUT_FILE` goes
// through a stream file (stream-decrypt reads it with io.ReaderAt).
package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"

	envelope "github.com/envelope-sdk/envelope/bindings/go"
)

func stream(op, uri string, aad []byte, in, out string) error {
	c, err := envelope.Open(uri, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return err
	}
	defer dst.Close()
	if op == "stream-encrypt" {
		w, err := c.NewWriter(dst, aad, nil)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, src); err != nil {
			return err
		}
		return w.Close()
	}
	info, err := src.Stat()
	if err != nil {
		return err
	}
	r, err := c.NewReaderAt(src, info.Size(), aad, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(dst, io.NewSectionReader(r, 0, r.Size()))
	return err
}

func main() {
	if len(os.Args) == 6 && (os.Args[1] == "stream-encrypt" || os.Args[1] == "stream-decrypt") {
		aad, err := hex.DecodeString(os.Args[3])
		if err == nil {
			err = stream(os.Args[1], os.Args[2], aad, os.Args[4], os.Args[5])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
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
