package sqlstore

import (
	"context"
	"database/sql"

	"github.com/ubihooks/ubihooks"
)

// ListProjects lists the projects a token may use.
func (s *Store) ListProjects(ctx context.Context, tokenID string) ([]*ubihooks.Project, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT p.id, p.name, p.organization_name, p.created_at FROM projects p
		JOIN token_access a ON a.project_id = p.id WHERE a.token_id = ? ORDER BY p.name`), tokenID)
	if err != nil {
		return nil, s.translate("list projects", err)
	}
	defer rows.Close()
	out := []*ubihooks.Project{}
	for rows.Next() {
		var p ubihooks.Project
		var created sql.NullInt64
		if err := rows.Scan(&p.ID, &p.Name, &p.OrganizationName, &created); err != nil {
			return nil, s.translate("list projects", err)
		}
		p.CreatedAt = fromTS(created)
		out = append(out, &p)
	}
	return out, s.translate("list projects", rows.Err())
}
