package httpsig

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePublicKeyPEM parses the first PEM block of data as an Ed25519
// SubjectPublicKeyInfo ("PUBLIC KEY"), the form ubihooks publishes for
// receivers. A private key is rejected with a clear error so it is not
// pasted where a public key belongs; other key types are rejected too.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("httpsig: no PEM block found")
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("httpsig: PEM block is a %s; configure the PUBLIC KEY instead", block.Type)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("httpsig: PEM block type %q, want \"PUBLIC KEY\"", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("httpsig: parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("httpsig: public key is %T, want Ed25519", k)
	}
	return pub, nil
}

// MarshalPublicKeyPEM encodes pub as a "PUBLIC KEY" (SubjectPublicKeyInfo)
// PEM block, which ParsePublicKeyPEM, OpenSSL and Python's cryptography read.
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key has %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
