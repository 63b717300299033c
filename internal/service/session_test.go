package service_test

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	nt := e.token(t, service.TokenCreate{Project: "demo", Name: "ui"})

	_, err := e.svc.SignIn(e.ctx, "ubh_wrong")
	wantErr(t, "SignIn(wrong token)", err, ubihooks.EUNAUTHORIZED, "invalid token")

	ns, err := e.svc.SignIn(e.ctx, "Token "+nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Secret == "" || ns.Secret == nt.Secret || len(ns.Secret) < 40 {
		t.Fatalf("session secret %q: want a fresh random secret of 32 bytes", ns.Secret)
	}
	tok, p, err := e.svc.AuthenticateSession(e.ctx, ns.Secret, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if tok.ID != nt.Token.ID || p.Name != "demo" || tok.Hash != nil {
		t.Errorf("AuthenticateSession = token %q (hash %x), project %q; want %q, no hash, demo", tok.ID, tok.Hash, p.Name, nt.Token.ID)
	}
	_, _, err = e.svc.AuthenticateSession(e.ctx, ns.Secret, "someone-else")
	wantErr(t, "AuthenticateSession(other project)", err, ubihooks.EFORBIDDEN, `no access to project "someone-else"`)
	_, _, err = e.svc.AuthenticateSession(e.ctx, nt.Secret, "demo")
	wantErr(t, "AuthenticateSession(the API token as a cookie)", err, ubihooks.EUNAUTHORIZED, "sign in again")

	// Use keeps it alive past the idle limit; the absolute limit ends it anyway.
	for range 20 {
		e.advance(service.SessionIdle - time.Hour)
		if _, _, err := e.svc.AuthenticateSession(e.ctx, ns.Secret, ""); err != nil {
			if e.clock().Sub(ns.Session.CreatedAt) < service.SessionMax {
				t.Fatalf("AuthenticateSession after %v of regular use: %v", e.clock().Sub(ns.Session.CreatedAt), err)
			}
			wantErr(t, "AuthenticateSession past the absolute limit", err, ubihooks.EUNAUTHORIZED, "sign in again")
			break
		}
		if e.clock().Sub(ns.Session.CreatedAt) >= service.SessionMax {
			t.Fatalf("session still works %v after sign-in", e.clock().Sub(ns.Session.CreatedAt))
		}
	}

	// Idle: unused for SessionIdle, it ends.
	idle, err := e.svc.SignIn(e.ctx, nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	e.advance(service.SessionIdle)
	_, _, err = e.svc.AuthenticateSession(e.ctx, idle.Secret, "")
	wantErr(t, "AuthenticateSession after the idle limit", err, ubihooks.EUNAUTHORIZED, "sign in again")

	// Sign-out and revocation end it at once.
	out, err := e.svc.SignIn(e.ctx, nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SignOut(e.ctx, out.Secret); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.AuthenticateSession(e.ctx, out.Secret, "")
	wantErr(t, "AuthenticateSession after sign-out", err, ubihooks.EUNAUTHORIZED, "sign in again")

	rev, err := e.svc.SignIn(e.ctx, nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeToken(e.ctx, nil, nt.Token.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.AuthenticateSession(e.ctx, rev.Secret, "")
	wantErr(t, "AuthenticateSession after the token's revocation", err, ubihooks.EUNAUTHORIZED, "sign in again")
	_, err = e.svc.SignIn(e.ctx, nt.Secret)
	wantErr(t, "SignIn with a revoked token", err, ubihooks.EUNAUTHORIZED, "revoked")
}

func TestSessionOfAnExpiringToken(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	nt := e.token(t, service.TokenCreate{Project: "demo", Name: "ui", ExpiresIn: time.Hour})
	ns, err := e.svc.SignIn(e.ctx, nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if !ns.Session.ExpiresAt.Equal(nt.Token.ExpiresAt) {
		t.Errorf("session expires at %v, want the token's expiry %v", ns.Session.ExpiresAt, nt.Token.ExpiresAt)
	}
	e.advance(time.Hour)
	_, _, err = e.svc.AuthenticateSession(e.ctx, ns.Secret, "demo")
	wantErr(t, "AuthenticateSession after the token expired", err, ubihooks.EUNAUTHORIZED, "sign in again")
}
