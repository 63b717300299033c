package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/service"
)

// A project token may not create projects, and its refusal is the same whether the name
// is free or taken by another tenant; the Python client's projects_create still works
// with an admin token (see TestProjectsEndpoints).
func TestProjectCreateNeedsAnAdminToken(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	b := e.root.As(e.tokB)
	free := b.Do("POST", "/projects", M{"name": "free-name", "organization_name": "o"}, "")
	taken := b.Do("POST", "/projects", M{"name": projA, "organization_name": "o"}, "")
	expectError(t, free, http.StatusForbidden, "admin token")
	expectError(t, taken, http.StatusForbidden, "admin token")
	if string(free.Body) != string(taken.Body) {
		t.Errorf("refusals differ: free name %s, taken name %s", free.Body, taken.Body)
	}
	expectError(t, b.Do("GET", "/projects/free-name", nil, ""), http.StatusForbidden, "no access")
	expectError(t, e.root.Do("GET", "/projects/free-name", nil, ""), http.StatusForbidden, "no access")
}

func TestTokensListAndRevoke(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	expectError(t, e.root.As(e.tokB).Do("GET", "/tokens", nil, ""), http.StatusForbidden, "admin token")

	r := e.root.MustDo("GET", "/tokens", nil, 200)
	list := r.List(t)
	if len(list) != 2 {
		t.Fatalf("tokens = %s, want 2", r.Body)
	}
	a, b := list[0], list[1]
	if a["name"] != "test" || a["admin"] != true || b["name"] != "b" || b["admin"] != false {
		t.Errorf("tokens = %s", r.Body)
	}
	if ps, ok := b["projects"].([]any); !ok || len(ps) != 1 || ps[0] != projB {
		t.Errorf("projects of token b = %v, want [%s]", b["projects"], projB)
	}
	if b["expiry_date"] != nil || b["revoked_date"] != nil || b["creation_date"] == nil || b["last_used"] == nil {
		t.Errorf("token b = %v: want a creation and a last use, no expiry, no revocation", b)
	}
	for _, k := range []string{"hash", "token", "secret"} {
		if _, ok := b[k]; ok {
			t.Errorf("token b lists %q", k)
		}
	}
	r = e.root.MustDo("GET", "/tokens?project="+projB, nil, 200)
	if l := r.List(t); len(l) != 1 || l[0]["name"] != "b" {
		t.Errorf("tokens of %s = %s", projB, r.Body)
	}

	// A project token may not revoke, not even another's token.
	id := b["id"].(string)
	expectError(t, e.root.As(e.tokB).Do("DELETE", "/tokens/"+a["id"].(string), nil, ""), http.StatusForbidden, "admin token")
	e.root.MustDo("DELETE", "/tokens/"+id, nil, 204)
	// Revocation ends the token's access at once, with a 401 JSON error.
	r = e.root.As(e.tokB).Do("GET", "/projects/"+projB+"/webhooks", nil, "")
	expectError(t, r, http.StatusUnauthorized, "revoked")
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("revoked: Content-Type %q", ct)
	}
	expectError(t, e.root.Do("DELETE", "/tokens/no-such-token", nil, ""), http.StatusNotFound, "not found")
}

func TestExpiredTokenIsRefused(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	nt, err := e.Service.CreateToken(e.Ctx, service.TokenCreate{Project: projB, Name: "short", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := e.root.As(nt.Secret)
	c.MustDo("GET", "/projects/"+projB, nil, 200)
	e.Clock.Advance(time.Hour)
	expectError(t, c.Do("GET", "/projects/"+projB, nil, ""), http.StatusUnauthorized, "expired")
	expectError(t, c.Do("GET", "/projects", nil, ""), http.StatusUnauthorized, "expired")
}
