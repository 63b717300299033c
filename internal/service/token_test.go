package service_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
)

// touchCounter counts the writes of last-use times.
type touchCounter struct {
	ubihooks.Store
	mu      sync.Mutex
	touches int
}

func (c *touchCounter) TouchToken(ctx context.Context, id string, at time.Time) error {
	c.mu.Lock()
	c.touches++
	c.mu.Unlock()
	return c.Store.TouchToken(ctx, id, at)
}

func (c *touchCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.touches
}

// tokenEnv is a service over real SQLite with a clock that the test moves.
type tokenEnv struct {
	ctx   context.Context
	svc   *service.Service
	store *touchCounter
	mu    sync.Mutex
	now   time.Time
}

func setupTokens(t *testing.T) *tokenEnv {
	t.Helper()
	e := &tokenEnv{ctx: context.Background(), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	st, err := sqlite.Open(e.ctx, filepath.Join(t.TempDir(), "ubihooks.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	e.store = &touchCounter{Store: st}
	e.svc = service.New(service.Config{Store: e.store, NowFunc: e.clock})
	return e
}

func (e *tokenEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *tokenEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *tokenEnv) token(t *testing.T, in service.TokenCreate) *service.NewToken {
	t.Helper()
	nt, err := e.svc.CreateToken(e.ctx, in)
	if err != nil {
		t.Fatalf("CreateToken(%+v): %v", in, err)
	}
	return nt
}

func (e *tokenEnv) auth(t *testing.T, secret, project string) *ubihooks.Token {
	t.Helper()
	tok, _, err := e.svc.Authenticate(e.ctx, "Token "+secret, project)
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", project, err)
	}
	return tok
}

func wantErr(t *testing.T, what string, err error, code string, msg string) {
	t.Helper()
	if ubihooks.ErrorCode(err) != code || !strings.Contains(ubihooks.ErrorMessage(err), msg) {
		t.Errorf("%s: err = %v (code %q), want code %q with %q", what, err, ubihooks.ErrorCode(err), code, msg)
	}
}

func TestCreateProjectNeedsAnAdminToken(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	user := e.auth(t, e.token(t, service.TokenCreate{Project: "user-proj", Name: "user"}).Secret, "")
	admin := e.auth(t, e.token(t, service.TokenCreate{Project: "ops", Name: "ops", Admin: true}).Secret, "")

	// A project token is refused alike whether the name is free or taken, so that the
	// refusal tells nothing about the names of other tenants.
	_, errFree := e.svc.CreateProject(e.ctx, "free-name", "org", user)
	_, errTaken := e.svc.CreateProject(e.ctx, "ops", "org", user)
	wantErr(t, "project token creating a free name", errFree, ubihooks.EFORBIDDEN, "admin token")
	if ubihooks.ErrorCode(errTaken) != ubihooks.ErrorCode(errFree) || ubihooks.ErrorMessage(errTaken) != ubihooks.ErrorMessage(errFree) {
		t.Errorf("project token creating a taken name: %v; creating a free one: %v; want the same answer", errTaken, errFree)
	}
	if _, err := e.svc.GetProject(e.ctx, "free-name"); !ubihooks.IsNotFound(err) {
		t.Errorf("a refused create left project free-name behind: %v", err)
	}

	p, err := e.svc.CreateProject(e.ctx, "team-x", "org", admin)
	if err != nil {
		t.Fatal(err)
	}
	if p.CreatedBy != admin.ID {
		t.Errorf("CreatedBy = %q, want the admin token %q", p.CreatedBy, admin.ID)
	}
	ps, err := e.svc.ListProjects(e.ctx, admin.ID)
	if err != nil || len(ps) != 2 || ps[1].Name != "team-x" {
		t.Errorf("admin's projects = %v, %v; want ops and team-x", ps, err)
	}
	_, err = e.svc.CreateProject(e.ctx, "team-x", "org", admin)
	wantErr(t, "admin creating a taken name", err, ubihooks.ECONFLICT, "already exists")
}

func TestCreateTokenCreatesOrJoins(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	first := e.token(t, service.TokenCreate{Project: "p1", Name: "a"})
	if !first.CreatedProject || first.Project.Name != "p1" || first.Project.CreatedBy != "" {
		t.Errorf("first token: CreatedProject %v, project %+v; want p1 created by the operator", first.CreatedProject, first.Project)
	}
	// A project the operator created is joined without asking.
	second := e.token(t, service.TokenCreate{Project: "p1", Name: "b"})
	if second.CreatedProject || second.Project.ID != first.Project.ID {
		t.Errorf("second token: CreatedProject %v, project %+v; want p1 joined", second.CreatedProject, second.Project)
	}

	// A project that a token created through the API is joined only when asked.
	admin := e.auth(t, e.token(t, service.TokenCreate{Project: "ops", Name: "ops", Admin: true}).Secret, "")
	if _, err := e.svc.CreateProject(e.ctx, "theirs", "org", admin); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.CreateToken(e.ctx, service.TokenCreate{Project: "theirs", Name: "c"})
	wantErr(t, "joining an API-made project without Join", err, ubihooks.ECONFLICT, "created through the API")
	joined := e.token(t, service.TokenCreate{Project: "theirs", Name: "c", Join: true})
	if joined.CreatedProject || joined.Project.CreatedBy != admin.ID {
		t.Errorf("joined token: CreatedProject %v, project %+v", joined.CreatedProject, joined.Project)
	}
	if tok := e.auth(t, joined.Secret, "theirs"); tok.ProjectID != joined.Project.ID {
		t.Errorf("joined token belongs to %s, want %s", tok.ProjectID, joined.Project.ID)
	}
}

func TestAuthenticateRefusesRevokedAndExpiredTokens(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	expiring := e.token(t, service.TokenCreate{Project: "p", Name: "short", ExpiresIn: time.Hour})
	revoked := e.token(t, service.TokenCreate{Project: "p", Name: "gone"})
	kept := e.token(t, service.TokenCreate{Project: "p", Name: "kept"})
	if !expiring.Token.ExpiresAt.Equal(e.clock().Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v, want %v", expiring.Token.ExpiresAt, e.clock().Add(time.Hour))
	}
	e.auth(t, revoked.Secret, "p")
	if err := e.svc.RevokeToken(e.ctx, nil, revoked.Token.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.svc.Authenticate(e.ctx, "Token "+revoked.Secret, "p")
	wantErr(t, "revoked token", err, ubihooks.EUNAUTHORIZED, "revoked")

	e.auth(t, expiring.Secret, "p")
	e.advance(time.Hour - time.Microsecond)
	e.auth(t, expiring.Secret, "p")
	e.advance(time.Microsecond)
	_, _, err = e.svc.Authenticate(e.ctx, "Token "+expiring.Secret, "p")
	wantErr(t, "expired token", err, ubihooks.EUNAUTHORIZED, "expired")
	e.auth(t, kept.Secret, "p")

	_, err = e.svc.CreateToken(e.ctx, service.TokenCreate{Project: "p", ExpiresIn: -time.Second})
	wantErr(t, "negative expiry", err, ubihooks.EINVALID, "expires")
	wantErr(t, "revoking an unknown token", e.svc.RevokeToken(e.ctx, nil, "nope"), ubihooks.ENOTFOUND, "not found")
}

func TestLastUseIsWrittenAtMostOnceAMinute(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	nt := e.token(t, service.TokenCreate{Project: "p", Name: "busy"})
	lastUsed := func() time.Time {
		t.Helper()
		toks, err := e.svc.ListTokens(e.ctx, nil, "p")
		if err != nil || len(toks) != 1 {
			t.Fatalf("ListTokens = %v, %v", toks, err)
		}
		return toks[0].LastUsedAt
	}
	if got := lastUsed(); !got.IsZero() {
		t.Errorf("unused token: LastUsedAt %v", got)
	}
	start := e.clock()
	for range 50 {
		e.auth(t, nt.Secret, "p")
		e.advance(time.Second)
	}
	// 50 calls over 50 s: one write.
	if got := e.store.count(); got != 1 {
		t.Errorf("%d writes of the last use for 50 calls within a minute, want 1", got)
	}
	if got := lastUsed(); !got.Equal(start) {
		t.Errorf("LastUsedAt = %v, want the first call's %v", got, start)
	}
	e.advance(10 * time.Second) // a minute after the first call
	e.auth(t, nt.Secret, "p")
	if got, want := lastUsed(), start.Add(time.Minute); !got.Equal(want) {
		t.Errorf("LastUsedAt = %v, want %v", got, want)
	}
	if got := e.store.count(); got != 2 {
		t.Errorf("%d writes after a minute, want 2", got)
	}
}

func TestTokensAreListedAndRevokedByAdminsOnly(t *testing.T) {
	t.Parallel()
	e := setupTokens(t)
	user := e.token(t, service.TokenCreate{Project: "p", Name: "user"})
	admin := e.token(t, service.TokenCreate{Project: "ops", Name: "ops", Admin: true})
	userTok, adminTok := e.auth(t, user.Secret, ""), e.auth(t, admin.Secret, "")

	_, err := e.svc.ListTokens(e.ctx, userTok, "")
	wantErr(t, "project token listing tokens", err, ubihooks.EFORBIDDEN, "admin token")
	wantErr(t, "project token revoking", e.svc.RevokeToken(e.ctx, userTok, adminTok.ID), ubihooks.EFORBIDDEN, "admin token")

	toks, err := e.svc.ListTokens(e.ctx, adminTok, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 || toks[0].Name != "user" || toks[1].Name != "ops" || !toks[1].Admin || toks[0].Admin {
		t.Errorf("tokens = %+v", toks)
	}
	for _, tok := range toks {
		if len(tok.Hash) != 0 {
			t.Errorf("ListTokens returned the hash of %s", tok.Name)
		}
	}
	_, err = e.svc.ListTokens(e.ctx, adminTok, "missing")
	wantErr(t, "listing the tokens of a missing project", err, ubihooks.ENOTFOUND, "missing")
	if err := e.svc.RevokeToken(e.ctx, adminTok, userTok.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(e.ctx, "Token "+user.Secret, ""); ubihooks.ErrorCode(err) != ubihooks.EUNAUTHORIZED {
		t.Errorf("revoked token still authenticates: %v", err)
	}
}
