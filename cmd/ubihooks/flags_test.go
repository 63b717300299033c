package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os/exec"
	"strings"
	"testing"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestHelpExitsZero: -h on every command prints its usage and exits 0, and no flag's
// argument name comes out garbled.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	bin := procBinary(t)
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}, {"token", "create", "-h"}, {"keys", "show", "-h"},
		{"keys", "rotate", "-h"}, {"migrate", "-h"}, {"listen", "-h"}, {"bench", "-h"}} {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("ubihooks %s: %v, want exit 0\n%s", strings.Join(args, " "), err, out.String())
		}
		if !strings.Contains(out.String(), "Usage") {
			t.Errorf("ubihooks %s printed no usage:\n%s", strings.Join(args, " "), out.String())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			// flag prints "  -name type"; a backquoted phrase in a usage would become the type.
			if f := strings.Fields(line); len(f) > 2 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(line, "    ") {
				t.Errorf("ubihooks %s: garbled flag line %q", strings.Join(args, " "), line)
			}
		}
	}
}

// TestBadEnvironmentFails: a value in the environment that does not parse is an error
// naming the variable, as a bad flag is; the flag, when given, wins.
func TestBadEnvironmentFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env, value string
		args       []string
	}{
		{"UBIHOOKS_RETENTION", "30d", []string{"serve"}},
		{"UBIHOOKS_MAX_IN_FLIGHT", "lots", []string{"serve"}},
		{"UBIHOOKS_KEY_OVERLAP", "a week", []string{"keys", "rotate"}},
	} {
		var stderr bytes.Buffer
		m := &Main{Stdout: &stderr, Stderr: &stderr, Getenv: func(k string) string {
			if k == tt.env {
				return tt.value
			}
			return ""
		}}
		err := m.Run(context.Background(), append(tt.args, "--database", t.TempDir()+"/u.db"))
		if err == nil || !strings.Contains(err.Error(), "$"+tt.env) {
			t.Errorf("%s=%q, ubihooks %s: %v, want an error naming $%s", tt.env, tt.value, tt.args[0], err, tt.env)
		}
	}
	// Given on the command line, the flag wins over the bad variable.
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(k string) string {
		if k == "UBIHOOKS_KEY_OVERLAP" {
			return "a week"
		}
		return ""
	}}
	var c serveConfig
	if err := m.parse(m.serveFlags("serve", &c), []string{"--key-overlap", "1h"}); err != nil {
		t.Errorf("bad $UBIHOOKS_KEY_OVERLAP with --key-overlap given: %v, want the flag to win", err)
	}
}

// TestUnexpectedArgument: an argument a command does not take is an error, not ignored.
func TestUnexpectedArgument(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"serve", "extra"}, {"migrate", "--database", "x.db", "extra"}, {"token", "create", "--project", "p", "oops"}} {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		err := m.Run(context.Background(), args)
		if err == nil || !strings.Contains(err.Error(), "unexpected argument") || errors.Is(err, flag.ErrHelp) {
			t.Errorf("ubihooks %s: %v, want an unexpected-argument error", strings.Join(args, " "), err)
		}
	}
}

// TestMigratePostgresNeedsNoKey: migrations read no sealed value, so migrating a
// PostgreSQL database needs no encryption key.
func TestMigratePostgresNeedsNoKey(t *testing.T) {
	t.Parallel()
	base := ubihookstest.PostgresBase(t)
	if base == "" {
		t.Skip("UBIHOOKS_TEST_POSTGRES_URL is not set")
	}
	var stderr bytes.Buffer
	m := &Main{Stdout: &stderr, Stderr: &stderr}
	if err := m.Run(context.Background(), []string{"migrate", "--database", ubihookstest.PostgresSchema(t, base)}); err != nil {
		t.Errorf("migrate on PostgreSQL without a key: %v\n%s", err, stderr.String())
	}
}

// TestFlagsOfferedDoSomething: a command offers only the flags it uses.
func TestFlagsOfferedDoSomething(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args   []string
		absent []string
	}{
		{[]string{"token", "create", "-h"}, []string{"-log-level", "-log-format"}},
		{[]string{"keys", "show", "-h"}, []string{"-log-level", "-key-overlap"}},
		{[]string{"migrate", "-h"}, []string{"-log-level", "-log-format"}},
	} {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out}
		if err := m.Run(context.Background(), tt.args); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("ubihooks %s: %v, want flag.ErrHelp", strings.Join(tt.args, " "), err)
		}
		for _, f := range tt.absent {
			if strings.Contains(out.String(), "  "+f+" ") {
				t.Errorf("ubihooks %s offers %s, which it does not use", strings.Join(tt.args, " "), f)
			}
		}
	}
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out}
	_ = m.Run(context.Background(), []string{"keys", "rotate", "-h"})
	if !strings.Contains(out.String(), "-key-overlap") {
		t.Errorf("keys rotate does not offer -key-overlap:\n%s", out.String())
	}
}
