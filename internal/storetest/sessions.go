package storetest

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

func testSessions(t *testing.T, s suite) {
	s.run(t, "RoundTrip", func(t *testing.T, f *fx) {
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("tok"), Name: "ui", CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok))
		ss := &ubihooks.Session{Hash: []byte("sess\x00\xff"), TokenID: tok.ID, CreatedAt: base, IdleExpiresAt: at(time.Hour), ExpiresAt: at(24 * time.Hour)}
		f.must(f.s.CreateSession(f.ctx, ss))

		got, gotTok, allowed, err := f.s.AuthenticateSession(f.ctx, ss.Hash, f.p.Name)
		f.must(err)
		same(t, "session", got, ss)
		if gotTok.ID != tok.ID || !allowed {
			t.Errorf("AuthenticateSession: token %q allowed %v, want %q true", gotTok.ID, allowed, tok.ID)
		}
		if _, _, allowed, _ := f.s.AuthenticateSession(f.ctx, ss.Hash, "other-project"); allowed {
			t.Error("AuthenticateSession(other project): allowed, want not")
		}
		if _, _, allowed, _ := f.s.AuthenticateSession(f.ctx, ss.Hash, ""); allowed {
			t.Error(`AuthenticateSession(""): allowed, want not`)
		}
		_, _, _, err = f.s.AuthenticateSession(f.ctx, []byte("nope"), f.p.Name)
		wantCode(t, "AuthenticateSession(unknown)", err, ubihooks.ENOTFOUND)

		f.must(f.s.TouchSession(f.ctx, ss.Hash, at(2*time.Hour)))
		f.must(f.s.TouchSession(f.ctx, ss.Hash, at(90*time.Minute))) // never back
		got, _, _, err = f.s.AuthenticateSession(f.ctx, ss.Hash, f.p.Name)
		f.must(err)
		same(t, "idle expiry after touches", got.IdleExpiresAt, at(2*time.Hour))

		f.must(f.s.DeleteSession(f.ctx, ss.Hash))
		f.must(f.s.DeleteSession(f.ctx, ss.Hash)) // twice is fine
		_, _, _, err = f.s.AuthenticateSession(f.ctx, ss.Hash, f.p.Name)
		wantCode(t, "AuthenticateSession(deleted)", err, ubihooks.ENOTFOUND)
	})

	s.run(t, "Expiry", func(t *testing.T, f *fx) {
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("tok"), Name: "ui", CreatedAt: base}
		revoked := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("rev"), Name: "rev", CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok))
		f.must(f.s.CreateToken(f.ctx, revoked))
		mk := func(name string, tokenID string, idle, abs time.Duration) []byte {
			h := []byte(name)
			f.must(f.s.CreateSession(f.ctx, &ubihooks.Session{Hash: h, TokenID: tokenID, CreatedAt: base, IdleExpiresAt: at(idle), ExpiresAt: at(abs)}))
			return h
		}
		idle := mk("idle", tok.ID, time.Minute, time.Hour)
		abs := mk("abs", tok.ID, 2*time.Hour, 10*time.Minute)
		live := mk("live", tok.ID, time.Hour, 2*time.Hour)
		ofRevoked := mk("of-revoked", revoked.ID, time.Hour, 2*time.Hour)
		n, err := f.s.DeleteExpiredSessions(f.ctx, at(10*time.Minute))
		f.must(err)
		if n != 2 {
			t.Errorf("DeleteExpiredSessions: removed %d, want 2 (idle and absolute)", n)
		}
		for _, h := range [][]byte{idle, abs} {
			_, _, _, err := f.s.AuthenticateSession(f.ctx, h, "")
			wantCode(t, "AuthenticateSession("+string(h)+")", err, ubihooks.ENOTFOUND)
		}
		for _, h := range [][]byte{live, ofRevoked} {
			if _, _, _, err := f.s.AuthenticateSession(f.ctx, h, ""); err != nil {
				t.Errorf("AuthenticateSession(%s): %v", h, err)
			}
		}
		// Revoking a token ends its sessions.
		f.must(f.s.RevokeToken(f.ctx, revoked.ID, at(11*time.Minute)))
		_, _, _, err = f.s.AuthenticateSession(f.ctx, ofRevoked, "")
		wantCode(t, "AuthenticateSession(session of a revoked token)", err, ubihooks.ENOTFOUND)
		if _, _, _, err := f.s.AuthenticateSession(f.ctx, live, ""); err != nil {
			t.Errorf("AuthenticateSession(live) after another token's revocation: %v", err)
		}
	})
}
