package api

import (
	"encoding/base64"
	"net/http"

	"github.com/ubihooks/ubihooks/httpsig"
)

// SigningKeyDetail is a published signing key.
type SigningKeyDetail struct {
	KeyID        string  `json:"key_id"`
	Algorithm    string  `json:"algorithm"`
	PublicKey    string  `json:"public_key"`
	PublicKeyPEM string  `json:"public_key_pem"`
	Active       bool    `json:"active"`
	CreationDate *string `json:"creation_date"`
	RetiredAt    *string `json:"retired_at"`
	ExpiresAt    *string `json:"expires_at"`
}

// SigningKeys is the published key set.
type SigningKeys struct {
	Keys []SigningKeyDetail `json:"keys"`
}

func (s *Server) signingKeys(c *call) error {
	keys, err := s.svc.PublishedKeys(c.r.Context())
	if err != nil {
		return err
	}
	out := SigningKeys{Keys: []SigningKeyDetail{}}
	for _, k := range keys {
		pem, err := httpsig.MarshalPublicKeyPEM(k.PublicKey)
		if err != nil {
			return err
		}
		d := SigningKeyDetail{KeyID: k.KeyID, Algorithm: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey),
			PublicKeyPEM: string(pem), Active: k.RetiredAt.IsZero(), CreationDate: isoTime(k.CreatedAt), RetiredAt: isoTime(k.RetiredAt)}
		if !k.RetiredAt.IsZero() {
			d.ExpiresAt = isoTime(k.RetiredAt.Add(s.svc.KeyOverlap()))
		}
		out.Keys = append(out.Keys, d)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) signingKeyPEM(c *call) error {
	k, err := s.svc.ActiveKey(c.r.Context())
	if err != nil {
		return err
	}
	pem, err := httpsig.MarshalPublicKeyPEM(k.PublicKey)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/x-pem-file")
	c.w.Header().Set("X-Key-Id", k.KeyID)
	_, err = c.w.Write(pem)
	return err
}
