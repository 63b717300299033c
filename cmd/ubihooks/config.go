package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
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

// envBool registers a boolean flag whose default comes from an environment variable
// (true/false, 1/0); a value that does not parse fails the command unless the flag is given.
func (m *Main) envBool(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	if v := m.Getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			m.badEnv(fs, name, fmt.Errorf("$%s=%q is not true or false", env, v))
		} else {
			def = b
		}
	}
	fs.BoolVar(p, name, def, usage+" ($"+env+")")
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

// dbFlags registers the flags of the database and its encryption key, which every command
// that opens the database has.
func (m *Main) dbFlags(fs *flag.FlagSet, c *dbConfig) {
	m.envFlag(fs, &c.Database, "database", "UBIHOOKS_DATABASE", "ubihooks.db", "SQLite file path, or a postgres:// URL")
	m.envFlag(fs, &c.EncryptionKey, "encryption-key", "UBIHOOKS_ENCRYPTION_KEY", "", "base64 AES-256 key that encrypts protected headers and signing keys")
	m.envFlag(fs, &c.EncryptionKeyFile, "encryption-key-file", "UBIHOOKS_ENCRYPTION_KEY_FILE", "", "file holding the encryption key (default for SQLite: <database>.key, created with mode 0600)")
}

// logFlags registers the log flags, for the commands that log (the others print only
// their result or their error).
func (m *Main) logFlags(fs *flag.FlagSet, c *dbConfig) {
	m.envFlag(fs, &c.LogLevel, "log-level", "UBIHOOKS_LOG_LEVEL", "info", "debug, info, warn or error")
	m.envFlag(fs, &c.LogFormat, "log-format", "UBIHOOKS_LOG_FORMAT", "text", "text or json")
}

// createFlag registers --create, for the commands that otherwise refuse a SQLite path
// where no database exists (a mistyped path would silently get a new, empty database).
func createFlag(fs *flag.FlagSet, p *bool) {
	fs.BoolVar(p, "create", false, "create the SQLite database if it does not exist")
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
// beside the database. A key file is created only for a new database: beside one that
// holds data, a new key could read none of its sealed values.
func (c *dbConfig) box(fresh bool) (*secret.Box, error) {
	var key []byte
	var err error
	file := c.EncryptionKeyFile
	switch {
	case c.EncryptionKey != "":
		key, err = secret.ParseKey(c.EncryptionKey)
	case file == "" && isPostgres(c.Database):
		return nil, errors.New("PostgreSQL needs an encryption key shared by every replica: set --encryption-key or $UBIHOOKS_ENCRYPTION_KEY (generate one with `openssl rand -base64 32`)")
	default:
		if file == "" {
			file = c.Database + ".key"
		}
		// Whether a PostgreSQL database is new is not known here: its key file is created
		// on first use, as before.
		if !fresh && !isPostgres(c.Database) {
			if _, serr := os.Stat(file); errors.Is(serr, fs.ErrNotExist) {
				return nil, fmt.Errorf("encryption key file %s is missing, and database %s is not new: restore the key file, or give the key with --encryption-key (a new key could not read the signing keys and protected headers)", file, c.Database)
			}
		}
		key, err = secret.LoadOrCreateKeyFile(file)
	}
	if err != nil {
		return nil, err
	}
	return secret.New(key)
}

// openOptions say what opening the database may do besides opening it.
type openOptions struct {
	// create lets a SQLite database that does not exist be created.
	create bool
	// lock takes the SQLite database for this process alone, until the returned close.
	lock bool
	// storeOnly opens the store without the service, and on PostgreSQL without the
	// encryption key, which only the service needs (migrations read no sealed value).
	// SQLite still loads or creates its key file beside a new database, since a database
	// migrated without one could not get one later.
	storeOnly bool
}

// checkSQLite checks a SQLite database path before anything is created: without create the
// database must exist, and with it its directory. It reports whether the database is new
// (absent, or an empty file with no write-ahead log).
func (c *dbConfig) checkSQLite(create bool) (fresh bool, err error) {
	fi, err := os.Stat(c.Database)
	switch {
	case err == nil && fi.IsDir():
		return false, fmt.Errorf("database %s is a directory", c.Database)
	case err == nil:
		if fi.Size() > 0 {
			return false, nil
		}
		wal, err := os.Stat(c.Database + "-wal")
		return err != nil || wal.Size() == 0, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("database %s: %w", c.Database, errors.Unwrap(err))
	case !create:
		return false, fmt.Errorf("no database at %s: give the path of an existing database, or pass --create to create one", c.Database)
	}
	if fi, err := os.Stat(filepath.Dir(c.Database)); err != nil || !fi.IsDir() {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("cannot create database %s: the directory does not exist", c.Database)
		}
		return false, fmt.Errorf("cannot create database %s: %w", c.Database, errors.Unwrap(err))
	}
	return true, nil
}

// open opens the store (and, on PostgreSQL, its notifications) and the service. Nothing
// is created (database, key file) before the checks pass. close closes the store, then
// releases the lock.
func (c *dbConfig) open(ctx context.Context, log *slog.Logger, keyOverlap time.Duration, o openOptions) (st ubihooks.Store, svc *service.Service, close func() error, err error) {
	fresh := false
	unlock := func() {}
	if !isPostgres(c.Database) {
		if fresh, err = c.checkSQLite(o.create); err != nil {
			return nil, nil, nil, err
		}
		if o.lock {
			if unlock, err = lockDatabase(c.Database); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	var box *secret.Box
	if !o.storeOnly || !isPostgres(c.Database) {
		if box, err = c.box(fresh); err != nil {
			unlock()
			return nil, nil, nil, err
		}
	}
	if isPostgres(c.Database) {
		st, err = postgres.Open(ctx, c.Database, postgres.Options{Logger: log})
	} else {
		st, err = sqlite.Open(ctx, c.Database, sqlite.Options{})
	}
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	if !o.storeOnly {
		svc = service.New(service.Config{Store: st, Box: box, Logger: log, KeyOverlap: keyOverlap})
	}
	return st, svc, func() error { defer unlock(); return st.Close() }, nil
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
