package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Web UI sessions last SessionIdle without use and SessionMax in all.
const (
	SessionIdle = 12 * time.Hour
	SessionMax  = 7 * 24 * time.Hour
)

// errSignedOut is the one answer to a session that is unknown, expired or whose token no
// longer works: the browser signs in again, whatever the reason.
func errSignedOut() error {
	return ubihooks.Errorf(ubihooks.EUNAUTHORIZED, "your session has ended; sign in again")
}

// NewSession is a session just created, with the secret that only the browser keeps.
type NewSession struct {
	Secret  string
	Session *ubihooks.Session
	Token   *ubihooks.Token
}

// SignIn checks an API token (as an Authorization value: "ubh_…", "Token ubh_…") and opens a
// web UI session for it. Its errors are Authenticate's.
func (s *Service) SignIn(ctx context.Context, token string) (*NewSession, error) {
	tok, _, err := s.Authenticate(ctx, token, "")
	if err != nil {
		return nil, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.Now()
	ss := &ubihooks.Session{Hash: HashToken(secret), TokenID: tok.ID, CreatedAt: now, IdleExpiresAt: now.Add(SessionIdle), ExpiresAt: now.Add(SessionMax)}
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(ss.ExpiresAt) {
		ss.ExpiresAt = tok.ExpiresAt
	}
	if err := s.store.CreateSession(ctx, ss); err != nil {
		return nil, err
	}
	return &NewSession{Secret: secret, Session: ss, Token: tok}, nil
}

// AuthenticateSession checks a session secret from a cookie, and its token: a revoked or
// expired token ends the session. With a project name it returns that project, or
// EFORBIDDEN when the token may not use it. Use moves the idle expiry forward (recorded at
// most once a minute).
func (s *Service) AuthenticateSession(ctx context.Context, secret, project string) (*ubihooks.Token, *ubihooks.Project, error) {
	if secret == "" {
		return nil, nil, errSignedOut()
	}
	ss, tok, allowed, err := s.store.AuthenticateSession(ctx, HashToken(secret), project)
	if ubihooks.IsNotFound(err) {
		return nil, nil, errSignedOut()
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.Now()
	if !tok.RevokedAt.IsZero() || (!tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt)) ||
		!now.Before(ss.IdleExpiresAt) || !now.Before(ss.ExpiresAt) {
		return nil, nil, errSignedOut()
	}
	if idle := now.Add(SessionIdle); idle.Sub(ss.IdleExpiresAt) >= touchEvery {
		if err := s.store.TouchSession(ctx, ss.Hash, idle); err != nil {
			s.log.Warn("record session use", slog.String("token", tok.ID), slog.Any("err", err))
		}
	}
	if tok.LastUsedAt.IsZero() || now.Sub(tok.LastUsedAt) >= touchEvery {
		if err := s.store.TouchToken(ctx, tok.ID, now); err != nil {
			s.log.Warn("record token use", slog.String("token", tok.ID), slog.Any("err", err))
		}
	}
	tok.Hash = nil
	if project == "" {
		return tok, nil, nil
	}
	if !allowed {
		return nil, nil, ubihooks.Errorf(ubihooks.EFORBIDDEN, "this token has no access to project %q", project)
	}
	p, err := s.store.GetProject(ctx, project)
	if ubihooks.IsNotFound(err) {
		return nil, nil, ubihooks.Errorf(ubihooks.EFORBIDDEN, "this token has no access to project %q", project)
	}
	return tok, p, err
}

// SignOut ends the session of a secret; an unknown one is not an error.
func (s *Service) SignOut(ctx context.Context, secret string) error {
	if secret == "" {
		return nil
	}
	return s.store.DeleteSession(ctx, HashToken(secret))
}
