//go:build !unix

package main

// lockDatabase does nothing where flock(2) is not available: a second server on the same
// SQLite file is then not detected.
func lockDatabase(string) (func(), error) { return func() {}, nil }
