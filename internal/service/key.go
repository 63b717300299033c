package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
)

// signerCache holds the active signing key, refreshed periodically so that a rotation by
// another process (or replica) is picked up.
type signerCache struct {
	mu      sync.Mutex
	key     ed25519.PrivateKey
	keyID   string
	fetched time.Time
}

// signerRefresh is how often the active key is re-read from the store.
const signerRefresh = 30 * time.Second

// EnsureSigningKey creates the first signing key if there is none, sealed at rest.
func (s *Service) EnsureSigningKey(ctx context.Context) error {
	keys, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			return nil
		}
	}
	err = s.addSigningKey(ctx, false)
	if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT { // another process won the race
		return nil
	}
	return err
}

func (s *Service) addSigningKey(ctx context.Context, rotate bool) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	k := &ubihooks.SigningKey{ID: newID(), KeyID: httpsig.KeyID(pub), PublicKey: pub,
		SealedPrivate: s.box.Seal(priv.Seed(), purposeSigningKey), CreatedAt: s.Now()}
	if err := s.store.AddSigningKey(ctx, k, rotate); err != nil {
		return err
	}
	s.signer.mu.Lock()
	s.signer.fetched = time.Time{}
	s.signer.mu.Unlock()
	return nil
}

// RotateSigningKey makes a new key the signer; the old one stays published for the
// configured overlap so that receivers can switch over.
func (s *Service) RotateSigningKey(ctx context.Context) (*ubihooks.SigningKey, error) {
	if err := s.addSigningKey(ctx, true); err != nil {
		return nil, err
	}
	if err := s.store.PruneSigningKeys(ctx, s.Now().Add(-s.keyOverlap)); err != nil {
		return nil, err
	}
	return s.ActiveKey(ctx)
}

// ActiveKey returns the active signing key (public parts).
func (s *Service) ActiveKey(ctx context.Context) (*ubihooks.SigningKey, error) {
	keys, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			return k, nil
		}
	}
	return nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "no active signing key; start the server once to create one")
}

// PublishedKeys returns the keys receivers should trust: the active one and those retired
// less than the overlap ago, newest first.
func (s *Service) PublishedKeys(ctx context.Context) ([]*ubihooks.SigningKey, error) {
	keys, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := s.Now().Add(-s.keyOverlap)
	out := []*ubihooks.SigningKey{}
	for _, k := range keys {
		if k.RetiredAt.IsZero() || k.RetiredAt.After(cutoff) {
			out = append(out, k)
		}
	}
	return out, nil
}

// KeyOverlap is how long a rotated-out key stays published.
func (s *Service) KeyOverlap() time.Duration { return s.keyOverlap }

// Signer returns the active private key and its key id, for the delivery engine.
func (s *Service) Signer(ctx context.Context) (ed25519.PrivateKey, string, error) {
	s.signer.mu.Lock()
	defer s.signer.mu.Unlock()
	if s.signer.key != nil && s.Now().Sub(s.signer.fetched) < signerRefresh {
		return s.signer.key, s.signer.keyID, nil
	}
	k, err := s.ActiveKey(ctx)
	if err != nil {
		if s.signer.key != nil { // keep signing with the last key through a store hiccup
			return s.signer.key, s.signer.keyID, nil
		}
		return nil, "", err
	}
	seed, err := s.box.Open(k.SealedPrivate, purposeSigningKey)
	if err != nil {
		return nil, "", ubihooks.Errorf(ubihooks.EINTERNAL, "the signing key cannot be decrypted: is the encryption key the one this database was created with?")
	}
	s.signer.key, s.signer.keyID, s.signer.fetched = ed25519.NewKeyFromSeed(seed), k.KeyID, s.Now()
	return s.signer.key, s.signer.keyID, nil
}
