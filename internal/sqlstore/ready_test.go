package sqlstore_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// Ready answers for a current schema, and names the migrations a database lacks.
func TestReadyChecksMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ready.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Ready(ctx); err != nil {
		t.Fatalf("Ready on a fresh database: %v", err)
	}
	if err := sqlstore.ExecTx(ctx, st, `DELETE FROM schema_migrations WHERE version = '0005_ui_sessions'`); err != nil {
		t.Fatal(err)
	}
	err = st.Ready(ctx)
	if ubihooks.ErrorCode(err) != ubihooks.EUNAVAILABLE || !strings.Contains(ubihooks.ErrorMessage(err), "migrations 0005_ui_sessions are not applied") {
		t.Errorf("Ready with a migration missing = %v, want EUNAVAILABLE naming 0005_ui_sessions", err)
	}
}
