package storetest

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

func testProjects(t *testing.T, s suite) {
	s.run(t, "CreateGet", func(t *testing.T, f *fx) {
		got, err := f.s.GetProject(f.ctx, "acme")
		f.must(err)
		same(t, "project", got, f.p)
	})
	s.run(t, "DuplicateName", func(t *testing.T, f *fx) {
		err := f.s.CreateProject(f.ctx, &ubihooks.Project{ID: newID(), Name: "acme", OrganizationName: "other", CreatedAt: base})
		wantCode(t, "CreateProject(taken name)", err, ubihooks.ECONFLICT)
		got, err := f.s.GetProject(f.ctx, "acme")
		f.must(err)
		if got.ID != f.p.ID {
			t.Errorf("project acme has ID %s after a conflicting create, want %s", got.ID, f.p.ID)
		}
	})
	s.run(t, "CreatedBy", func(t *testing.T, f *fx) {
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("admin"), Name: "ops", Admin: true, CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok))
		p := &ubihooks.Project{ID: newID(), Name: "made-by-token", OrganizationName: "o", CreatedBy: tok.ID, CreatedAt: at(time.Second)}
		f.must(f.s.CreateProject(f.ctx, p))
		got, err := f.s.GetProject(f.ctx, p.Name)
		f.must(err)
		same(t, "project created by a token", got, p)
		got, err = f.s.GetProject(f.ctx, "acme")
		f.must(err)
		if got.CreatedBy != "" {
			t.Errorf("project created by the operator has CreatedBy %q, want empty", got.CreatedBy)
		}
	})
	s.run(t, "GetMissing", func(t *testing.T, f *fx) {
		_, err := f.s.GetProject(f.ctx, "nope")
		wantCode(t, "GetProject(missing)", err, ubihooks.ENOTFOUND)
	})
}

func testTokens(t *testing.T, s suite) {
	s.run(t, "Authenticate", func(t *testing.T, f *fx) {
		other, third := f.project("other"), f.project("third")
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("hash-1\x00\xff"), Name: "ci", CreatedAt: at(time.Second)}
		f.must(f.s.CreateToken(f.ctx, tok))
		// A second token of another project must not leak into the first one's rights.
		tok2 := &ubihooks.Token{ID: newID(), ProjectID: other.ID, Hash: []byte("hash-2"), Name: "other", CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok2))

		allowed := func(hash []byte, project string) bool {
			t.Helper()
			got, ok, err := f.s.Authenticate(f.ctx, hash, project)
			f.must(err)
			if got.ID != tokenIDOf(hash, tok, tok2) {
				t.Errorf("Authenticate(%q, %s) returned token %s", hash, project, got.ID)
			}
			return ok
		}
		got, ok, err := f.s.Authenticate(f.ctx, tok.Hash, "acme")
		f.must(err)
		same(t, "token", got, tok)
		if !ok {
			t.Errorf("token not allowed for its own project")
		}
		if allowed(tok.Hash, "other") {
			t.Errorf("token allowed for project other before GrantAccess")
		}
		f.must(f.s.GrantAccess(f.ctx, tok.ID, other.ID))
		f.must(f.s.GrantAccess(f.ctx, tok.ID, other.ID)) // granting twice is harmless
		if !allowed(tok.Hash, "other") {
			t.Errorf("token not allowed for project other after GrantAccess")
		}
		if !allowed(tok.Hash, "acme") {
			t.Errorf("token no longer allowed for its own project after GrantAccess")
		}
		if allowed(tok.Hash, "third") {
			t.Errorf("token allowed for project %s that was never granted", third.Name)
		}
		if allowed(tok.Hash, "missing-project") {
			t.Errorf("token allowed for a project that does not exist")
		}
		if allowed(tok2.Hash, "acme") {
			t.Errorf("token of project other allowed for acme")
		}
		_, _, err = f.s.Authenticate(f.ctx, []byte("wrong"), "acme")
		wantCode(t, "Authenticate(wrong hash)", err, ubihooks.ENOTFOUND)
		_, _, err = f.s.Authenticate(f.ctx, tok.Hash[:len(tok.Hash)-1], "acme")
		wantCode(t, "Authenticate(hash prefix)", err, ubihooks.ENOTFOUND)
	})
	s.run(t, "ListProjects", func(t *testing.T, f *fx) {
		zeta, beta := f.project("zeta"), f.project("beta")
		f.project("hidden")
		tok := &ubihooks.Token{ID: newID(), ProjectID: zeta.ID, Hash: []byte("h"), Name: "t", CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok))
		f.must(f.s.GrantAccess(f.ctx, tok.ID, f.p.ID))
		f.must(f.s.GrantAccess(f.ctx, tok.ID, beta.ID))
		ps, err := f.s.ListProjects(f.ctx, tok.ID)
		f.must(err)
		sameList(t, "ListProjects", names(ps, func(p *ubihooks.Project) string { return p.Name }), []string{"acme", "beta", "zeta"})
		if len(ps) == 3 {
			same(t, "listed project", ps[0], f.p)
		}
		ps, err = f.s.ListProjects(f.ctx, newID())
		if err != nil || len(ps) != 0 {
			t.Errorf("ListProjects(unknown token) = %d projects, %v; want none", len(ps), err)
		}
	})
	s.run(t, "DuplicateHash", func(t *testing.T, f *fx) {
		f.must(f.s.CreateToken(f.ctx, &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("h"), Name: "a", CreatedAt: base}))
		err := f.s.CreateToken(f.ctx, &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("h"), Name: "b", CreatedAt: base})
		wantCode(t, "CreateToken(taken hash)", err, ubihooks.ECONFLICT)
	})
}

func testTokenLifecycle(t *testing.T, s suite) {
	s.run(t, "RoundTrip", func(t *testing.T, f *fx) {
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("life"), Name: "ops", Admin: true,
			CreatedAt: base, ExpiresAt: at(24 * time.Hour)}
		f.must(f.s.CreateToken(f.ctx, tok))
		got, ok, err := f.s.Authenticate(f.ctx, tok.Hash, "acme")
		f.must(err)
		if !ok {
			t.Errorf("admin token not allowed for its own project")
		}
		same(t, "admin token with an expiry", got, tok)
	})
	s.run(t, "Revoke", func(t *testing.T, f *fx) {
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("r"), Name: "r", CreatedAt: base}
		other := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("o"), Name: "o", CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok))
		f.must(f.s.CreateToken(f.ctx, other))
		f.must(f.s.RevokeToken(f.ctx, tok.ID, at(time.Minute)))
		f.must(f.s.RevokeToken(f.ctx, tok.ID, at(time.Hour))) // the first revocation stands
		got, _, err := f.s.Authenticate(f.ctx, tok.Hash, "acme")
		f.must(err)
		if !got.RevokedAt.Equal(at(time.Minute)) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at(time.Minute))
		}
		got, _, err = f.s.Authenticate(f.ctx, other.Hash, "acme")
		f.must(err)
		if !got.RevokedAt.IsZero() {
			t.Errorf("revoking one token revoked another: RevokedAt = %v", got.RevokedAt)
		}
		wantCode(t, "RevokeToken(unknown)", f.s.RevokeToken(f.ctx, newID(), base), ubihooks.ENOTFOUND)
	})
	s.run(t, "Touch", func(t *testing.T, f *fx) {
		tok := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("t"), Name: "t", CreatedAt: base}
		f.must(f.s.CreateToken(f.ctx, tok))
		lastUsed := func() time.Time {
			t.Helper()
			got, _, err := f.s.Authenticate(f.ctx, tok.Hash, "")
			f.must(err)
			return got.LastUsedAt
		}
		if got := lastUsed(); !got.IsZero() {
			t.Errorf("new token has LastUsedAt %v, want zero", got)
		}
		f.must(f.s.TouchToken(f.ctx, tok.ID, at(2*time.Minute)))
		if got := lastUsed(); !got.Equal(at(2 * time.Minute)) {
			t.Errorf("LastUsedAt = %v, want %v", got, at(2*time.Minute))
		}
		// A late touch (from a slower call) never moves the time back.
		f.must(f.s.TouchToken(f.ctx, tok.ID, at(time.Minute)))
		if got := lastUsed(); !got.Equal(at(2 * time.Minute)) {
			t.Errorf("LastUsedAt after an older touch = %v, want %v", got, at(2*time.Minute))
		}
		f.must(f.s.TouchToken(f.ctx, tok.ID, at(5*time.Minute)))
		if got := lastUsed(); !got.Equal(at(5 * time.Minute)) {
			t.Errorf("LastUsedAt = %v, want %v", got, at(5*time.Minute))
		}
		f.must(f.s.TouchToken(f.ctx, newID(), base))
	})
	s.run(t, "List", func(t *testing.T, f *fx) {
		other := f.project("other")
		a := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("a"), Name: "a", Admin: true, CreatedAt: base, ExpiresAt: at(time.Hour)}
		b := &ubihooks.Token{ID: newID(), ProjectID: other.ID, Hash: []byte("b"), Name: "b", CreatedAt: at(time.Second)}
		c := &ubihooks.Token{ID: newID(), ProjectID: f.p.ID, Hash: []byte("c"), Name: "c", CreatedAt: at(2 * time.Second)}
		for _, tok := range []*ubihooks.Token{c, b, a} {
			f.must(f.s.CreateToken(f.ctx, tok))
		}
		f.must(f.s.GrantAccess(f.ctx, a.ID, other.ID))
		f.must(f.s.TouchToken(f.ctx, b.ID, at(time.Minute)))
		f.must(f.s.RevokeToken(f.ctx, c.ID, at(time.Hour)))

		all, err := f.s.ListTokens(f.ctx, "")
		f.must(err)
		wantA, wantB, wantC := *a, *b, *c
		wantA.Projects, wantB.Projects, wantC.Projects = []string{"acme", "other"}, []string{"other"}, []string{"acme"}
		wantB.LastUsedAt, wantC.RevokedAt = at(time.Minute), at(time.Hour)
		sameList(t, "ListTokens", names(all, func(t *ubihooks.Token) string { return t.Name }), []string{"a", "b", "c"})
		if len(all) == 3 {
			same(t, "token a", all[0], &wantA)
			same(t, "token b", all[1], &wantB)
			same(t, "token c", all[2], &wantC)
		}
		ofOther, err := f.s.ListTokens(f.ctx, other.ID)
		f.must(err)
		sameList(t, "ListTokens(other)", names(ofOther, func(t *ubihooks.Token) string { return t.Name }), []string{"a", "b"})
		if len(ofOther) == 2 {
			same(t, "token a of other", ofOther[0], &wantA)
		}
		none, err := f.s.ListTokens(f.ctx, newID())
		if err != nil || len(none) != 0 {
			t.Errorf("ListTokens(unknown project) = %d tokens, %v; want none", len(none), err)
		}
	})
}

func tokenIDOf(hash []byte, toks ...*ubihooks.Token) string {
	for _, t := range toks {
		if string(t.Hash) == string(hash) {
			return t.ID
		}
	}
	return ""
}

func testSigningKeys(t *testing.T, s suite) {
	key := func(n int, created time.Time) *ubihooks.SigningKey {
		return &ubihooks.SigningKey{ID: newID(), KeyID: "sha512:" + string(rune('a'+n)), PublicKey: []byte{byte(n), 1, 2, 3},
			SealedPrivate: []byte{0xff, byte(n), 0}, CreatedAt: created}
	}
	s.run(t, "AddRotateListPrune", func(t *testing.T, f *fx) {
		list := func() []*ubihooks.SigningKey {
			t.Helper()
			ks, err := f.s.ListSigningKeys(f.ctx)
			f.must(err)
			return ks
		}
		if ks := list(); len(ks) != 0 {
			t.Fatalf("new store has %d signing keys, want 0", len(ks))
		}
		k1, k2, k3 := key(1, base), key(2, at(time.Hour)), key(3, at(2*time.Hour))
		f.must(f.s.AddSigningKey(f.ctx, k1, false))

		err := f.s.AddSigningKey(f.ctx, k2, false)
		wantCode(t, "AddSigningKey(no rotate, one active)", err, ubihooks.ECONFLICT)
		ks := list()
		if len(ks) != 1 {
			t.Fatalf("after a refused add: %d keys, want 1", len(ks))
		}
		same(t, "key", ks[0], k1)

		f.must(f.s.AddSigningKey(f.ctx, k2, true))
		f.must(f.s.AddSigningKey(f.ctx, k3, true))
		ks = list()
		sameList(t, "keys", ids(ks, func(k *ubihooks.SigningKey) string { return k.ID }), []string{k3.ID, k2.ID, k1.ID})
		if len(ks) == 3 {
			want1, want2 := *k1, *k2
			want1.RetiredAt, want2.RetiredAt = k2.CreatedAt, k3.CreatedAt
			same(t, "newest key", ks[0], k3)
			same(t, "rotated key", ks[1], &want2)
			same(t, "oldest key", ks[2], &want1)
		}

		// k1 retired at +1h, k2 at +2h: pruning before +90m removes k1 only.
		f.must(f.s.PruneSigningKeys(f.ctx, at(90*time.Minute)))
		sameList(t, "keys after prune", ids(list(), func(k *ubihooks.SigningKey) string { return k.ID }), []string{k3.ID, k2.ID})
		// The active key is never pruned.
		f.must(f.s.PruneSigningKeys(f.ctx, at(1000*time.Hour)))
		sameList(t, "keys after pruning all retired", ids(list(), func(k *ubihooks.SigningKey) string { return k.ID }), []string{k3.ID})
		// With rotate, a key can still be added after everything was pruned.
		k4 := key(4, at(3*time.Hour))
		f.must(f.s.AddSigningKey(f.ctx, k4, true))
		wantCode(t, "AddSigningKey(no rotate, k4 active)", f.s.AddSigningKey(f.ctx, key(5, at(4*time.Hour)), false), ubihooks.ECONFLICT)
	})
	s.run(t, "FirstWithoutRotate", func(t *testing.T, f *fx) {
		// Rotating when no key is active simply adds the key.
		k := key(1, base)
		f.must(f.s.AddSigningKey(f.ctx, k, true))
		ks, err := f.s.ListSigningKeys(f.ctx)
		f.must(err)
		if len(ks) != 1 {
			t.Fatalf("%d keys, want 1", len(ks))
		}
		same(t, "key", ks[0], k)
	})
}
