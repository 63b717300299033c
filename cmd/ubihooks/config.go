package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/secret"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
)

func version() string { return ubihooks.Release }

// dbConfig is the configuration every command that opens the database shares. Each flag
// has an environment variable; a flag given on the command line wins.
type dbConfig struct {
	Database          string
	EncryptionKey     string
	EncryptionKeyFile string
	LogLevel          string
	LogFormat         string
}

// envFlag registers a string flag whose default comes from an environment variable.
func (m *Main) envFlag(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	if v := m.Getenv(env); v != "" {
		def = v
	}
	fs.StringVar(p, name, def, usage+" ($"+env+")")
}

// envDuration registers a duration flag whose default comes from an environment variable;
// a value that does not parse fails the command (see parse) unless the flag is given.
func (m *Main) envDuration(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := m.Getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			m.badEnv(fs, name, fmt.Errorf("$%s=%q is not a duration (use e.g. 90s, 15m or 720h)", env, v))
		} else {
			def = d
		}
	}
	fs.DurationVar(p, name, def, usage+" ($"+env+")")
}

// envInt registers an integer flag whose default comes from an environment variable; a
// value that does not parse fails the command (see parse) unless the flag is given.
func (m *Main) envInt(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	if v := m.Getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			m.badEnv(fs, name, fmt.Errorf("$%s=%q is not a whole number", env, v))
		} else {
			def = n
		}
	}
	fs.IntVar(p, name, def, usage+" ($"+env+")")
}

// badEnv remembers that the environment variable behind flag name of fs holds a value
// that does not parse.
func (m *Main) badEnv(fs *flag.FlagSet, name string, err error) {
	if m.envErrs == nil {
		m.envErrs = map[*flag.FlagSet]map[string]error{}
	}
	if m.envErrs[fs] == nil {
		m.envErrs[fs] = map[string]error{}
	}
	m.envErrs[fs][name] = err
}

// parse parses a command's flags and fails on what the command cannot use: an
// environment value that does not parse (unless its flag was given, which wins) and
// arguments left over after the flags.
func (m *Main) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	names := make([]string, 0, len(m.envErrs[fs]))
	for name := range m.envErrs[fs] {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !given[name] {
			return m.envErrs[fs][name]
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (flags come before arguments, and this command takes none)", fs.Name(), fs.Arg(0))
	}
	return nil
}

func (m *Main) dbFlags(fs *flag.FlagSet, c *dbConfig) {
	m.envFlag(fs, &c.Database, "database", "UBIHOOKS_DATABASE", "ubihooks.db", "SQLite file path, or a postgres:// URL")
	m.envFlag(fs, &c.EncryptionKey, "encryption-key", "UBIHOOKS_ENCRYPTION_KEY", "", "base64 AES-256 key that encrypts protected headers and signing keys")
	m.envFlag(fs, &c.EncryptionKeyFile, "encryption-key-file", "UBIHOOKS_ENCRYPTION_KEY_FILE", "", "file holding the encryption key (default for SQLite: <database>.key, created with mode 0600)")
	m.envFlag(fs, &c.LogLevel, "log-level", "UBIHOOKS_LOG_LEVEL", "info", "debug, info, warn or error")
	m.envFlag(fs, &c.LogFormat, "log-format", "UBIHOOKS_LOG_FORMAT", "text", "text or json")
}

func (m *Main) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ubihooks "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

func (c *dbConfig) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", c.LogFormat)
}

// box loads the encryption key: given directly, from a file, or (SQLite only) from a file
// beside the database that is created on first use.
func (c *dbConfig) box() (*secret.Box, error) {
	var key []byte
	var err error
	switch {
	case c.EncryptionKey != "":
		key, err = secret.ParseKey(c.EncryptionKey)
	case c.EncryptionKeyFile != "":
		key, err = secret.LoadOrCreateKeyFile(c.EncryptionKeyFile)
	case isPostgres(c.Database):
		return nil, errors.New("PostgreSQL needs an encryption key shared by every replica: set --encryption-key or $UBIHOOKS_ENCRYPTION_KEY (generate one with `openssl rand -base64 32`)")
	default:
		key, err = secret.LoadOrCreateKeyFile(c.Database + ".key")
	}
	if err != nil {
		return nil, err
	}
	return secret.New(key)
}

// open opens the store (and, on PostgreSQL, its notifications) and the service.
func (c *dbConfig) open(ctx context.Context, log *slog.Logger, keyOverlap time.Duration) (ubihooks.Store, *service.Service, error) {
	box, err := c.box()
	if err != nil {
		return nil, nil, err
	}
	var st ubihooks.Store
	if isPostgres(c.Database) {
		st, err = postgres.Open(ctx, c.Database, postgres.Options{Logger: log})
	} else {
		st, err = sqlite.Open(ctx, c.Database, sqlite.Options{})
	}
	if err != nil {
		return nil, nil, err
	}
	svc := service.New(service.Config{Store: st, Box: box, Logger: log, KeyOverlap: keyOverlap})
	return st, svc, nil
}

func parseAllowNetworks(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	n, err := outbound.ParseNetworks(s)
	if err != nil {
		return nil, fmt.Errorf("--allow-networks: %w", err)
	}
	return n, nil
}

func ownerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), ubihooks.NewID()[24:])
}
