package ubihookstest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create and drop schemas
)

// PostgresBase returns the URL of the test PostgreSQL server from
// UBIHOOKS_TEST_POSTGRES_URL, or "" when it is unset; under CI ($CI set) an unset URL
// fails the test instead.
func PostgresBase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("UBIHOOKS_TEST_POSTGRES_URL")
	if base == "" && os.Getenv("CI") != "" {
		t.Fatal("UBIHOOKS_TEST_POSTGRES_URL is required under CI")
	}
	return base
}

// PostgresSchema creates a schema of its own for the test on the server at base and returns
// a URL whose search_path is that schema; the schema is dropped when the test ends.
func PostgresSchema(t testing.TB, base string) string {
	t.Helper()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	schema := "ubh_test_" + hex.EncodeToString(suffix)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
