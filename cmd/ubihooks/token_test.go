package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
)

// cli runs commands in-process on one SQLite file.
type cli struct {
	t  *testing.T
	db string
}

// newCLI returns a cli on a database that migrate created, as an operator's first serve
// or migrate would (the token commands refuse a path without a database).
func newCLI(t *testing.T) cli {
	t.Helper()
	c := cli{t: t, db: filepath.Join(t.TempDir(), "t.db")}
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	if err := m.Run(context.Background(), []string{"migrate", "--database", c.db}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c cli) run(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb}
	// Flags go before the positional arguments (the id of `token revoke`).
	full := append(append(append([]string{}, args[:2]...), "--database", c.db), args[2:]...)
	err = m.Run(context.Background(), full)
	return out.String(), errb.String(), err
}

func (c cli) must(args ...string) (stdout, stderr string) {
	c.t.Helper()
	stdout, stderr, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v: %v\n%s", args, err, stderr)
	}
	return stdout, stderr
}

// service opens the database beside the commands, as the server would, and closes it
// before returning, so that the commands run alone on the file again.
func (c cli) service(fn func(*service.Service)) {
	c.t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, c.db, sqlite.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer st.Close()
	fn(service.New(service.Config{Store: st}))
}

func TestTokenCreateSaysWhetherItCreatedOrJoined(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	tok, msg := c.must("token", "create", "--project", "p1", "--name", "ci")
	if !strings.HasPrefix(tok, service.TokenPrefix) || strings.Count(tok, "\n") != 1 {
		t.Errorf("stdout = %q, want the token alone", tok)
	}
	if !strings.Contains(msg, `created project "p1"`) {
		t.Errorf("stderr = %q, want it to say that p1 was created", msg)
	}
	if _, msg = c.must("token", "create", "--project", "p1", "--name", "second"); !strings.Contains(msg, `joined project "p1"`) {
		t.Errorf("second token: stderr = %q, want it to say that p1 was joined", msg)
	}

	// A project that a token made through the API is joined only with --join.
	admin, _ := c.must("token", "create", "--project", "ops", "--admin")
	c.service(func(svc *service.Service) {
		tok, _, err := svc.Authenticate(context.Background(), strings.TrimSpace(admin), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateProject(context.Background(), "theirs", "org", tok); err != nil {
			t.Fatal(err)
		}
	})
	out, _, err := c.run("token", "create", "--project", "theirs")
	if err == nil || !strings.Contains(err.Error(), "--join") || out != "" {
		t.Errorf("joining an API-made project without --join: err %v, stdout %q; want a refusal that mentions --join", err, out)
	}
	out, msg = c.must("token", "create", "--project", "theirs", "--join")
	if !strings.HasPrefix(out, service.TokenPrefix) || !strings.Contains(msg, `joined project "theirs"`) || !strings.Contains(msg, "through the API") {
		t.Errorf("--join: stdout %q, stderr %q", out, msg)
	}
}

func TestTokenListAndRevoke(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	ci, _ := c.must("token", "create", "--project", "p1", "--name", "ci", "--expires-in", "24h")
	c.must("token", "create", "--project", "ops", "--name", "ops", "--admin")
	if _, _, err := c.run("token", "create", "--project", "p1", "--expires-in", "-1h"); err == nil {
		t.Errorf("a negative --expires-in was accepted")
	}

	out, _ := c.must("token", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("token list:\n%s\nwant a header and 2 tokens", out)
	}
	for _, h := range []string{"ID", "NAME", "PROJECTS", "ADMIN", "CREATED", "EXPIRES", "LAST USED", "REVOKED"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("header %q lacks %s", lines[0], h)
		}
	}
	if strings.Contains(out, service.TokenPrefix) || strings.Contains(out, strings.TrimSpace(ci)) {
		t.Errorf("token list shows a secret:\n%s", out)
	}
	ciRow, opsRow := strings.Fields(lines[1]), strings.Fields(lines[2])
	if ciRow[1] != "ci" || ciRow[2] != "p1" || ciRow[3] != "no" || ciRow[5] == "-" || ciRow[6] != "-" || ciRow[7] != "-" {
		t.Errorf("ci row = %q, want ci of p1, not admin, an expiry, never used, not revoked", lines[1])
	}
	if opsRow[1] != "ops" || opsRow[3] != "yes" || opsRow[5] != "-" {
		t.Errorf("ops row = %q, want an admin token without expiry", lines[2])
	}
	if out, _ = c.must("token", "list", "--project", "ops"); strings.Contains(out, " ci ") || !strings.Contains(out, "ops") {
		t.Errorf("token list --project ops:\n%s", out)
	}

	_, msg := c.must("token", "revoke", ciRow[0])
	if !strings.Contains(msg, "revoked") {
		t.Errorf("revoke: stderr %q", msg)
	}
	c.service(func(svc *service.Service) {
		_, _, err := svc.Authenticate(context.Background(), strings.TrimSpace(ci), "p1")
		if ubihooks.ErrorCode(err) != ubihooks.EUNAUTHORIZED {
			t.Errorf("revoked token authenticates: %v", err)
		}
	})
	out, _ = c.must("token", "list", "--project", "p1")
	if row := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); row[7] == "-" {
		t.Errorf("revoked token listed as not revoked: %q", row)
	}
	if _, _, err := c.run("token", "revoke", "no-such-id"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("revoking an unknown id: %v", err)
	}
}
