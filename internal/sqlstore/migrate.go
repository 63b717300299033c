package sqlstore

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Migrate applies, in file-name order, the *.sql migrations of fsys's migrations folder
// that applied does not report as done. apply runs one migration and records it as done,
// in one transaction (how depends on the driver; adapters also decide on locking).
func Migrate(fsys fs.FS, applied func(version string) (bool, error), apply func(version, body string) error) error {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
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
