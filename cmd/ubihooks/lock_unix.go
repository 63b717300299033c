//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDatabase takes an exclusive lock on the SQLite database file for this process, or
// fails at once when another process holds it: SQLite is single node, since the engine's
// hand-over of new deliveries and its wake-ups stay within one process (several servers
// run on PostgreSQL). The lock is flock(2), which the kernel drops when the process ends,
// crashed or not, and which SQLite's own (fcntl) locks do not see. unlock releases it.
func lockDatabase(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open database %s: %w", path, errors.Unwrap(err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("database %s is in use by another ubihooks server: SQLite serves one server at a time (run several on PostgreSQL)", path)
		}
		return nil, fmt.Errorf("lock database %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
