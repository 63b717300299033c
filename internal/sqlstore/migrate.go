package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/ubihooks/ubihooks"
)

// Migrate applies, in file-name order, the *.sql migrations of fsys's migrations folder
// that applied does not report as done. apply runs one migration and records it as done,
// in one transaction (how depends on the driver; adapters also decide on locking).
func Migrate(fsys fs.FS, applied func(version string) (bool, error), apply func(version, body string) error) error {
	versions, err := migrationVersions(fsys)
	if err != nil {
		return err
	}
	for _, version := range versions {
		name := "migrations/" + version + ".sql"
		done, err := applied(version)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if done {
			continue
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		if err := apply(version, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
	}
	return nil
}

// migrationVersions lists the versions of fsys's migrations, in the order they apply.
func migrationVersions(fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for i, name := range names {
		names[i] = strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
	}
	return names, nil
}

// Ready reports whether the database answers and has applied every migration this binary
// knows: EUNAVAILABLE when not, with a message for anyone (no address or user name) that
// wraps the driver's error for the log. It is cheap (one small query), for readiness
// probes.
func (s *Store) Ready(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return unavailable(err)
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return unavailable(err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return unavailable(err)
	}
	if s.d.Migrations == nil {
		return nil
	}
	versions, err := migrationVersions(s.d.Migrations)
	if err != nil {
		return err
	}
	var missing []string
	for _, v := range versions {
		if !applied[v] {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return ubihooks.Errorf(ubihooks.EUNAVAILABLE, "database schema is behind this binary: migrations %s are not applied (run ubihooks migrate)", strings.Join(missing, ", "))
	}
	return nil
}

// unavailable is Ready's answer to a database that does not answer.
func unavailable(err error) error {
	return fmt.Errorf("%w (%w)", ubihooks.Errorf(ubihooks.EUNAVAILABLE, "database unavailable"), err)
}
