package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runMain runs one command in-process and returns its error and what it wrote.
func runMain(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb}
	err = m.Run(context.Background(), args)
	return out.String(), errb.String(), err
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestServeFailedStartLeavesNothing: a serve that cannot listen fails before it creates
// the database or its key file.
func TestServeFailedStartLeavesNothing(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	_, _, err = runMain("serve", "--listen", taken.Addr().String(), "--database", filepath.Join(dir, "u.db"))
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("serve on a taken port: err = %v, want one naming %s", err, taken.Addr())
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("a failed start left %v behind, want nothing", names)
	}
}

// TestToolsNeedDatabase: token create and keys refuse a path without a database (a typo
// would otherwise make a new, empty one) unless asked to create it.
func TestToolsNeedDatabase(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"token", "create", "--project", "p1"}, {"keys", "show"}, {"keys", "rotate"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db := filepath.Join(dir, "u.db")
			_, _, err := runMain(append(args, "--database", db)...)
			if err == nil || !strings.Contains(err.Error(), "no database at "+db) || !strings.Contains(err.Error(), "--create") {
				t.Errorf("err = %v, want one saying there is no database at %s and naming --create", err, db)
			}
			if names := dirEntries(t, dir); len(names) != 0 {
				t.Errorf("a refused command left %v behind, want nothing", names)
			}
			if out, errs, err := runMain(append(args, "--database", db, "--create")...); err != nil || out == "" {
				t.Errorf("with --create: out %q, err %v\n%s", out, err, errs)
			}
		})
	}
}

// TestMissingKeyFile: a database whose key file is gone is an error naming the file; a
// new key would make the signing keys and protected headers unreadable.
func TestMissingKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "u.db")
	if _, errs, err := runMain("migrate", "--database", db); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errs)
	}
	key := db + ".key"
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"keys", "show", "--database", db}, {"keys", "show", "--create", "--database", db},
		{"migrate", "--database", db}, {"serve", "--listen", "127.0.0.1:0", "--database", db}} {
		_, _, err := runMain(args...)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%v: err = %v, want one naming %s", args, err, key)
		}
		if _, err := os.Stat(key); err == nil {
			t.Fatalf("%v created a new key file", args)
		}
	}
}

// TestDatabaseDirectoryMissing: a database path in a directory that does not exist is an
// error that names the path.
func TestDatabaseDirectoryMissing(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "nowhere", "u.db")
	want := "cannot create database " + db + ": the directory does not exist"
	for _, args := range [][]string{{"migrate", "--database", db}, {"token", "create", "--project", "p1", "--create", "--database", db},
		{"serve", "--listen", "127.0.0.1:0", "--database", db}} {
		if _, _, err := runMain(args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want %q", args, err, want)
		}
	}
}

// TestSecondServerRefused: SQLite is single node, so a second server on the same
// database file is refused while the first runs, and starts once it stopped.
func TestSecondServerRefused(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "u.db")
	serve := func() (cancel func() error, err error) {
		ctx, stop := context.WithCancel(context.Background())
		addrc, done := make(chan string, 1), make(chan error, 1)
		m := &Main{Stdout: io.Discard, Stderr: io.Discard, OnListenFunc: func(a string) { addrc <- a }}
		go func() { done <- m.Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--database", db}) }()
		select {
		case <-addrc:
			return func() error { stop(); return <-done }, nil
		case err := <-done:
			stop()
			return nil, err
		case <-time.After(30 * time.Second):
			stop()
			t.Fatal("serve did not start")
			return nil, nil
		}
	}
	stop1, err := serve()
	if err != nil {
		t.Fatalf("first server: %v", err)
	}
	// The file that the lock created holds request data: only its owner may read it.
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database created by serve: %v, %v; want mode -rw-------", fi.Mode(), err)
	}
	if stop2, err := serve(); err == nil {
		stop2()
		t.Fatal("a second server on the same SQLite file started")
	} else if !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "another ubihooks server") {
		t.Errorf("second server: err = %v, want one naming %s and the other server", err, db)
	}
	if err := stop1(); err != nil {
		t.Fatalf("first server: %v", err)
	}
	stop3, err := serve()
	if err != nil {
		t.Fatalf("a server after the first stopped: %v", err)
	}
	if err := stop3(); err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusesBadHealthPolicy: webhook health flags that cannot be applied stop serve
// before it opens anything, with an error naming the flag.
func TestServeRefusesBadHealthPolicy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--disable-min-failures", "0"}, "--disable-min-failures must be at least 1"},
		{[]string{"--failing-after", "-1"}, "--failing-after must not be negative"},
		{[]string{"--disable-after", "-1h"}, "--disable-after must not be negative"},
		{[]string{"--health-interval", "0s"}, "--health-interval must be positive"},
		{[]string{"--operations-webhook", "ftp://ops.example.com/hook"}, "--operations-webhook"},
	} {
		dir := t.TempDir()
		_, _, err := runMain(append([]string{"serve", "--listen", "127.0.0.1:0", "--database", filepath.Join(dir, "u.db")}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %v: err = %v, want one containing %q", tt.args, err, tt.want)
		}
		if names := dirEntries(t, dir); len(names) != 0 {
			t.Errorf("serve %v left %v behind, want nothing", tt.args, names)
		}
	}
}
