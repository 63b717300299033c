// Command ubihooks is the ubihooks webhook server and its tools, in one binary:
//
//	ubihooks serve          run the API, the delivery engine and the request executor
//	ubihooks token create   create an API token for a project (printed once, on stdout)
//	ubihooks token list     list the API tokens (never their secrets)
//	ubihooks token revoke   revoke API tokens by ID
//	ubihooks keys show      print the active signing public key (PEM)
//	ubihooks keys rotate    make a new signing key the signer
//	ubihooks migrate        create or upgrade the database schema
//	ubihooks listen         receive webhooks and verify their signatures
//	ubihooks bench          measure delivery throughput and latency
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM shuts down gracefully; a second one ends the process at
	// once (an operator who does not want to wait for the grace). Work cut that way is what
	// a crash leaves: leases that expire, sends that go again.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "ubihooks: %v again: exiting now, without waiting for the shutdown\n", sig)
		os.Exit(1)
	}()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h asked for the usage, which was printed
		}
		fmt.Fprintln(os.Stderr, "ubihooks:", err)
		os.Exit(2)
	}
}

// Main is the program, as a value so that tests can run it in-process.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// OnListenFunc is called with the API's address once serve listens (tests use :0).
	OnListenFunc func(addr string)

	envErrs map[*flag.FlagSet]map[string]error // see badEnv
}

const usage = `ubihooks: a self-hostable, UbiOps-compatible webhook server

Usage:
  ubihooks serve [flags]                 run the server
  ubihooks token create --project NAME   create an API token (printed once; --admin, --expires-in, --join)
  ubihooks token list [--project NAME]   list the API tokens (never their secrets)
  ubihooks token revoke ID...            revoke API tokens at once
  ubihooks keys show                     print the active signing public key (PEM)
  ubihooks keys rotate                   make a new signing key the signer
  ubihooks migrate                       create or upgrade the database schema
  ubihooks backup --to FILE              write a consistent SQLite snapshot (while serve runs)
  ubihooks listen [flags]                receive webhooks and verify their signatures
  ubihooks bench [flags]                 measure delivery throughput and latency
  ubihooks version                       print the version

Run "ubihooks <command> -h" for the flags of a command.
`

// Run runs one command.
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return m.serve(ctx, rest)
	case "token":
		if len(rest) > 0 {
			switch rest[0] {
			case "create":
				return m.tokenCreate(ctx, rest[1:])
			case "list":
				return m.tokenList(ctx, rest[1:])
			case "revoke":
				return m.tokenRevoke(ctx, rest[1:])
			}
		}
		return errors.New(`usage: ubihooks token create --project NAME | token list | token revoke ID [ID]`)
	case "keys":
		if len(rest) == 0 || (rest[0] != "show" && rest[0] != "rotate") {
			return errors.New(`usage: ubihooks keys show|rotate`)
		}
		return m.keys(ctx, rest[0], rest[1:])
	case "migrate":
		return m.migrate(ctx, rest)
	case "backup":
		return m.backup(ctx, rest)
	case "listen":
		return m.listen(ctx, rest)
	case "bench":
		return m.bench(ctx, rest)
	case "version", "--version", "-v":
		fmt.Fprintln(m.Stdout, "ubihooks", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	fmt.Fprint(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
