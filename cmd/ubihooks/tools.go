package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ubihooks/ubihooks/internal/sqlite"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/service"
)

// tokenCreate creates a token, and its project when it does not exist, printing only the
// token on stdout and on stderr whether the project was created or joined.
func (m *Main) tokenCreate(ctx context.Context, args []string) error {
	var c dbConfig
	var in service.TokenCreate
	fs := m.newFlagSet("token create")
	m.dbFlags(fs, &c)
	fs.StringVar(&in.Project, "project", "", "project the token belongs to (created if it does not exist)")
	fs.StringVar(&in.Organization, "organization", "default", "organization of a new project")
	fs.StringVar(&in.Name, "name", "", "a note to recognise the token by")
	fs.BoolVar(&in.Admin, "admin", false, "an admin token: it may also create projects and list and revoke tokens through the API")
	fs.DurationVar(&in.ExpiresIn, "expires-in", 0, "how long the token works, e.g. 720h (default: until revoked)")
	fs.BoolVar(&in.Join, "join", false, "join the project even though a token created it through the API (its creator keeps its access)")
	var create bool
	createFlag(fs, &create)
	if err := m.parse(fs, args); err != nil {
		return err
	}
	if in.Project == "" {
		return fmt.Errorf("--project is required")
	}
	_, svc, closeDB, err := c.open(ctx, quietLogger(), 0, openOptions{create: create})
	if err != nil {
		return err
	}
	defer closeDB()
	nt, err := svc.CreateToken(ctx, in)
	if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT {
		return fmt.Errorf("%s; pass --join to add a token to it anyway", ubihooks.ErrorMessage(err))
	}
	if err != nil {
		return err
	}
	switch p := nt.Project; {
	case nt.CreatedProject:
		fmt.Fprintf(m.Stderr, "created project %q with token %s\n", p.Name, nt.Token.ID)
	case p.CreatedBy != "":
		fmt.Fprintf(m.Stderr, "joined project %q, created through the API by token %s, with token %s\n", p.Name, p.CreatedBy, nt.Token.ID)
	default:
		fmt.Fprintf(m.Stderr, "joined project %q (created %s) with token %s\n", p.Name, p.CreatedAt.Format(time.RFC3339), nt.Token.ID)
	}
	fmt.Fprintln(m.Stdout, nt.Secret)
	return nil
}

// tokenList prints the tokens as a table, never their secrets.
func (m *Main) tokenList(ctx context.Context, args []string) error {
	var c dbConfig
	var project string
	fs := m.newFlagSet("token list")
	m.dbFlags(fs, &c)
	fs.StringVar(&project, "project", "", "only the tokens that may use this project")
	if err := m.parse(fs, args); err != nil {
		return err
	}
	_, svc, closeDB, err := c.open(ctx, quietLogger(), 0, openOptions{})
	if err != nil {
		return err
	}
	defer closeDB()
	toks, err := svc.ListTokens(ctx, nil, project)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tPROJECTS\tADMIN\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
	for _, t := range toks {
		name := t.Name
		if name == "" {
			name = "-"
		}
		admin := "no"
		if t.Admin {
			admin = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, name, strings.Join(t.Projects, ","), admin,
			listTime(t.CreatedAt), listTime(t.ExpiresAt), listTime(t.LastUsedAt), listTime(t.RevokedAt))
	}
	return w.Flush()
}

// listTime is a column of the token list: one word, so that the columns split on spaces.
func listTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// tokenRevoke revokes tokens by ID; their next call is refused.
func (m *Main) tokenRevoke(ctx context.Context, args []string) error {
	var c dbConfig
	fs := m.newFlagSet("token revoke")
	m.dbFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: ubihooks token revoke [flags] ID... (the IDs are in `ubihooks token list`)")
	}
	_, svc, closeDB, err := c.open(ctx, quietLogger(), 0, openOptions{})
	if err != nil {
		return err
	}
	defer closeDB()
	for _, id := range fs.Args() {
		if err := svc.RevokeToken(ctx, nil, id); err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "revoked token %s\n", id)
	}
	return nil
}

// keys shows or rotates the signing key.
func (m *Main) keys(ctx context.Context, cmd string, args []string) error {
	var c dbConfig
	fs := m.newFlagSet("keys " + cmd)
	m.dbFlags(fs, &c)
	keyOverlap := 7 * 24 * time.Hour
	if cmd == "rotate" { // keys older than the overlap are pruned at a rotation
		m.envDuration(fs, &keyOverlap, "key-overlap", "UBIHOOKS_KEY_OVERLAP", keyOverlap, "how long a rotated-out key stays published")
	}
	var create bool
	createFlag(fs, &create)
	if err := m.parse(fs, args); err != nil {
		return err
	}
	_, svc, closeDB, err := c.open(ctx, quietLogger(), keyOverlap, openOptions{create: create})
	if err != nil {
		return err
	}
	defer closeDB()
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
	if err := m.parse(fs, args); err != nil {
		return err
	}
	_, _, closeDB, err := c.open(ctx, quietLogger(), 0, openOptions{create: true, storeOnly: true})
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stderr, "database is up to date")
	return closeDB()
}

// backup writes a consistent snapshot of a SQLite database; serve may keep running.
func (m *Main) backup(ctx context.Context, args []string) error {
	var c dbConfig
	var to string
	fs := m.newFlagSet("backup")
	m.dbFlags(fs, &c)
	fs.StringVar(&to, "to", "", "the snapshot's file (must not exist)")
	if err := m.parse(fs, args); err != nil {
		return err
	}
	if to == "" {
		return errors.New("--to FILE is required: where to write the snapshot")
	}
	if isPostgres(c.Database) {
		return errors.New("backup writes SQLite snapshots; back up PostgreSQL with pg_dump (see docs/operations.md)")
	}
	if err := sqlite.Backup(ctx, c.Database, to); err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "wrote %s; the encryption key is not in it: keep %s (or the key you give --encryption-key) with it\n",
		to, keyFileOf(c))
	return nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// keyFileOf names where a database's encryption key lives, for messages.
func keyFileOf(c dbConfig) string {
	if c.EncryptionKeyFile != "" {
		return c.EncryptionKeyFile
	}
	return c.Database + ".key"
}
