package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/service"
)

// tokenCreate creates a project (if needed) and a token, printing only the token.
func (m *Main) tokenCreate(ctx context.Context, args []string) error {
	var c dbConfig
	var project, org, name string
	fs := m.newFlagSet("token create")
	m.dbFlags(fs, &c)
	fs.StringVar(&project, "project", "", "project the token belongs to (created if it does not exist)")
	fs.StringVar(&org, "organization", "default", "organization of a new project")
	fs.StringVar(&name, "name", "", "a note to recognise the token by")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if project == "" {
		return fmt.Errorf("--project is required")
	}
	st, svc, err := c.open(ctx, quietLogger(), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	nt, err := svc.CreateToken(ctx, service.TokenCreate{Project: project, Organization: org, Name: name})
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, nt.Secret)
	return nil
}

// keys shows or rotates the signing key.
func (m *Main) keys(ctx context.Context, cmd string, args []string) error {
	var c dbConfig
	fs := m.newFlagSet("keys " + cmd)
	m.dbFlags(fs, &c)
	var keyOverlap time.Duration
	m.envDuration(fs, &keyOverlap, "key-overlap", "UBIHOOKS_KEY_OVERLAP", 7*24*time.Hour, "how long a rotated-out key stays published")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, svc, err := c.open(ctx, quietLogger(), keyOverlap)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := svc.EnsureSigningKey(ctx); err != nil {
		return err
	}
	if cmd == "rotate" {
		if _, err := svc.RotateSigningKey(ctx); err != nil {
			return err
		}
	}
	k, err := svc.ActiveKey(ctx)
	if err != nil {
		return err
	}
	pem, err := httpsig.MarshalPublicKeyPEM(k.PublicKey)
	if err != nil {
		return err
	}
	_, err = m.Stdout.Write(pem)
	if cmd == "rotate" {
		fmt.Fprintf(m.Stderr, "new signing key %s is active; the previous key stays published for %s\n", k.KeyID, keyOverlap)
	}
	return err
}

// migrate creates or upgrades the schema (serve does this too on start).
func (m *Main) migrate(ctx context.Context, args []string) error {
	var c dbConfig
	fs := m.newFlagSet("migrate")
	m.dbFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, _, err := c.open(ctx, quietLogger(), 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stderr, "database is up to date")
	return st.Close()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
