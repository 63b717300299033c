package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	b, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed := b.Seal([]byte("Token 123"), "header")
	if bytes.Contains(sealed, []byte("Token 123")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := b.Open(sealed, "header")
	if err != nil || string(got) != "Token 123" {
		t.Fatalf("Open = %q, %v; want %q", got, err, "Token 123")
	}
	if _, err := b.Open(sealed, "signing-key"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with another purpose: err = %v, want ErrDecrypt", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(sealed, "header"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with another key: err = %v, want ErrDecrypt", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := b.Open(sealed, "header"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open tampered: err = %v, want ErrDecrypt", err)
	}
	if _, err := b.Open([]byte{1, 2}, "header"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open short: err = %v, want ErrDecrypt", err)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db.key")
	k1, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", got)
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load = %x, %v; want the same key %x", k2, err, k1)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, s := range []string{GenerateKey(), "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"} {
		if k, err := ParseKey(s); err != nil || len(k) != KeySize {
			t.Errorf("ParseKey(%q) = %x, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "short", "AAAA"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}
