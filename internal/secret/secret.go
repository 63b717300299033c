// Package secret encrypts values at rest (protected header values, signing keys) with
// AES-256-GCM under one operator key.
//
// Ciphertexts are: a version byte (1), a 12-byte random nonce, then the sealed bytes. Each
// value is bound to its purpose with additional data, so a ciphertext copied from one column
// to another does not decrypt. Losing the key makes every sealed value unrecoverable: the
// protected headers must be entered again and a new signing key is generated.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the size of an operator key in bytes (AES-256).
const KeySize = 32

const version = 1

// ErrDecrypt is returned when a value cannot be opened: the wrong key, or tampering.
var ErrDecrypt = errors.New("secret: cannot decrypt (wrong encryption key or corrupted value)")

// Box seals and opens values with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to purpose (e.g. "header", "signing-key").
func (b *Box) Seal(plaintext []byte, purpose string) []byte {
	out := make([]byte, 1+b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		panic("secret: no randomness: " + err.Error())
	}
	return b.aead.Seal(out, out[1:], plaintext, []byte(purpose))
}

// Open decrypts a value sealed for purpose.
func (b *Box) Open(sealed []byte, purpose string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrDecrypt
	}
	pt, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(purpose))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ParseKey decodes an operator key given as base64 (standard or URL alphabet) or 64 hex
// characters.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	if len(s) == 2*KeySize {
		k := make([]byte, KeySize)
		if _, err := fmt.Sscanf(s, "%x", &k); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("secret: the encryption key must be %d random bytes in base64 (e.g. `openssl rand -base64 32`)", KeySize)
}

// GenerateKey returns a new random key, base64-encoded.
func GenerateKey() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("secret: no randomness: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(k)
}

// LoadOrCreateKeyFile reads the key in path, or creates the file with a new key and mode
// 0600 when it does not exist. It refuses a key file that others can read.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // another process created it first
			return LoadOrCreateKeyFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("secret: create key file: %w", err)
		}
		key := GenerateKey()
		if _, err := f.WriteString(key + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("secret: write key file: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("secret: sync key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("secret: close key file: %w", err)
		}
		return ParseKey(key)
	}
	if err != nil {
		return nil, fmt.Errorf("secret: read key file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret: key file %s is readable by others (mode %v); run chmod 600 on it", path, fi.Mode().Perm())
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return k, nil
}
