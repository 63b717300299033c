package sqlstore

import (
	"context"

	"github.com/ubihooks/ubihooks"
)

// ListProjects lists the projects a token may use.
func (s *Store) ListProjects(ctx context.Context, tokenID string) ([]*ubihooks.Project, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+projectColumns+` FROM projects p
		JOIN token_access a ON a.project_id = p.id WHERE a.token_id = ? ORDER BY p.name`), tokenID)
	if err != nil {
		return nil, s.translate("list projects", err)
	}
	defer rows.Close()
	out := []*ubihooks.Project{}
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, s.translate("list projects", err)
		}
		out = append(out, p)
	}
	return out, s.translate("list projects", rows.Err())
}
