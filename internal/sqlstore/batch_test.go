package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestPoolBatchesShareCommits: on PostgreSQL, concurrent write transactions share
// database transactions; one that fails (a unique violation, a panic, a caller gone) is
// answered with its error and takes nothing of the others with it.
func TestPoolBatchesShareCommits(t *testing.T) {
	t.Parallel()
	base := ubihookstest.PostgresBase(t)
	if base == "" {
		t.Skip("UBIHOOKS_TEST_POSTGRES_URL is not set")
	}
	db, err := postgres.Open(t.Context(), ubihookstest.PostgresSchema(t, base), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := db.Store
	if _, err := s.DB().ExecContext(t.Context(), `CREATE TABLE batch_rows (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.ExecTx(t.Context(), s, `INSERT INTO batch_rows (k) VALUES ('taken')`); err != nil {
		t.Fatal(err)
	}
	before := sqlstore.PoolBatches(s)
	const n = 400
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch {
			case i%50 == 7: // a duplicate key: fails at the database
				errs[i] = sqlstore.ExecTx(t.Context(), s, `INSERT INTO batch_rows (k) VALUES ('taken')`)
			case i%50 == 13: // a function that fails by itself
				errs[i] = sqlstore.FailingTx(t.Context(), s)
			case i%50 == 21: // a panic, raised again in its caller
				func() {
					defer func() {
						if p := recover(); p == nil {
							errs[i] = errors.New("no panic")
						} else {
							errs[i] = fmt.Errorf("panicked: %v", p)
						}
					}()
					_ = sqlstore.PanickingTx(t.Context(), s)
				}()
			case i%50 == 33: // its caller left before it ran
				errs[i] = sqlstore.ExecTx(gone, s, `INSERT INTO batch_rows (k) VALUES ($1)`, fmt.Sprint("gone-", i))
			default:
				errs[i] = sqlstore.ExecTx(t.Context(), s, `INSERT INTO batch_rows (k) VALUES ($1)`, fmt.Sprint("row-", i))
			}
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch i % 50 {
		case 7:
			if err == nil || !strings.Contains(err.Error(), "23505") {
				t.Errorf("duplicate %d: %v, want a conflict", i, err)
			}
		case 13:
			if err == nil || !strings.Contains(err.Error(), "boom") {
				t.Errorf("failing %d: %v, want boom", i, err)
			}
		case 21:
			if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
				t.Errorf("panicking %d: %v, want its panic", i, err)
			}
		case 33:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("gone %d: %v, want context.Canceled", i, err)
			}
		default:
			want++
			if err != nil {
				t.Errorf("insert %d: %v", i, err)
			}
		}
	}
	var got, gotGone int
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FILTER (WHERE k LIKE 'row-%'), COUNT(*) FILTER (WHERE k LIKE 'gone-%') FROM batch_rows`).Scan(&got, &gotGone); err != nil {
		t.Fatal(err)
	}
	if got != want || gotGone != 0 {
		t.Errorf("%d rows and %d of gone callers committed, want %d and 0", got, gotGone, want)
	}
	batches := sqlstore.PoolBatches(s) - before
	if batches <= 0 || batches >= n {
		t.Errorf("%d transactions ran in %d database transactions: no batching", n, batches)
	}
	t.Logf("%d transactions (%d committed) in %d database transactions", n, want, batches)
}
