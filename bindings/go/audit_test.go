package envelope

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// envelopeCLI runs the `envelope` binary the test command built (ENVELOPE_CLI); a missing
// one fails the test, never skips it.
func envelopeCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := os.Getenv("ENVELOPE_CLI")
	if bin == "" {
		t.Fatal("ENVELOPE_CLI is not set: run scripts/test.sh, which builds and exports it")
	}
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("envelope %v: %v: %s", args, err, out)
	}
	return out
}

func TestKeyUseLogVerifiesAndCountsCacheUse(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "audit.key")
	envelopeCLI(t, "audit", "keygen", "--name", "go-audit", "--out", key)
	_, uri := newKeyring(t)
	logDir := filepath.Join(dir, "log")
	audit := &AuditOptions{Dir: logDir, Signer: key, Actor: "go-billing", Label: "users.card"}
	c := open(t, uri, &Options{Audit: audit})
	secret := []byte("PLAINTEXT-CANARY-4111")
	aad := []byte("AAD-CANARY-users.card#7")
	for i := 0; i < 40; i++ {
		ct, err := c.Encrypt(secret, aad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decrypt(ct, aad); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var report map[string]any
	out := envelopeCLI(t, "audit", "verify", logDir, "--public-key", key[:len(key)-len(".key")]+".pub", "--json")
	if err := json.Unmarshal(out, &report); err != nil || report["status"] != "verified" {
		t.Fatalf("verification: %v %s", err, out)
	}
	segments, _ := filepath.Glob(filepath.Join(logDir, "audit-*.jsonl"))
	counts := map[string]float64{}
	for _, segment := range segments {
		f, err := os.Open(segment)
		if err != nil {
			t.Fatal(err)
		}
		scanner := bufio.NewScanner(f)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		for scanner.Scan() {
			if strings.Contains(scanner.Text(), "CANARY") {
				t.Fatalf("a secret reached the log: %s", scanner.Text())
			}
			var line map[string]any
			if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			if line["type"] == "cache" && line["label"] == "users.card" {
				counts[line["op"].(string)] += line["count"].(float64)
			}
		}
		f.Close()
	}
	if counts["encrypt"] != 40 || counts["decrypt"] != 40 {
		t.Fatalf("cache use %v, want 40 encryptions and 40 decryptions", counts)
	}
}

func TestBadAuditOptionsAreRefused(t *testing.T) {
	_, uri := newKeyring(t)
	_, err := Open(uri, &Options{Audit: &AuditOptions{Dir: t.TempDir()}})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a log without a signer: %v", err)
	}
}
