package ubihooks

import "time"

// Session is a signed-in browser of the web UI. The browser holds a random secret in a
// cookie; the store keeps only its hash, so that a copy of the database opens no session.
// A session acts with its token's rights: a revoked or expired token ends it.
type Session struct {
	Hash    []byte
	TokenID string
	// CreatedAt is when the browser signed in.
	CreatedAt time.Time
	// IdleExpiresAt ends the session when it is not used; each use moves it forward.
	IdleExpiresAt time.Time
	// ExpiresAt ends the session however much it is used.
	ExpiresAt time.Time
}
