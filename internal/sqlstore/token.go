package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/ubihooks/ubihooks"
)

const tokenColumns = `t.id, t.project_id, t.hash, t.name, t.admin, t.created_at, t.expires_at, t.last_used_at, t.revoked_at`

// scanToken reads tokenColumns, then extra.
func scanToken(row interface{ Scan(...any) error }, extra ...any) (*ubihooks.Token, error) {
	var t ubihooks.Token
	var admin int
	var created, expires, used, revoked sql.NullInt64
	if err := row.Scan(append([]any{&t.ID, &t.ProjectID, &t.Hash, &t.Name, &admin, &created, &expires, &used, &revoked}, extra...)...); err != nil {
		return nil, err
	}
	t.Admin = admin == 1
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromTS(created), fromTS(expires), fromTS(used), fromTS(revoked)
	return &t, nil
}

// ListTokens lists tokens with the names of their projects.
func (s *Store) ListTokens(ctx context.Context, projectID string) ([]*ubihooks.Token, error) {
	// Two plain queries rather than a string aggregate, whose name and syntax differ between
	// the engines; the list is an operator's, not a hot path.
	where, access, args := "", "", []any{}
	if projectID != "" {
		where = ` WHERE t.id IN (SELECT token_id FROM token_access WHERE project_id = ?)`
		access = ` WHERE a.token_id IN (SELECT token_id FROM token_access WHERE project_id = ?)`
		args = append(args, projectID)
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+tokenColumns+` FROM tokens t`+where+` ORDER BY t.created_at, t.id`), args...)
	if err != nil {
		return nil, s.translate("list tokens", err)
	}
	defer rows.Close()
	out := []*ubihooks.Token{}
	byID := map[string]*ubihooks.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, s.translate("list tokens", err)
		}
		out = append(out, t)
		byID[t.ID] = t
	}
	if err := rows.Err(); err != nil {
		return nil, s.translate("list tokens", err)
	}
	rows.Close()
	arows, err := s.r.QueryContext(ctx, s.q(`SELECT a.token_id, p.name FROM token_access a JOIN projects p ON p.id = a.project_id`+access+` ORDER BY p.name`), args...)
	if err != nil {
		return nil, s.translate("list tokens", err)
	}
	defer arows.Close()
	for arows.Next() {
		var id, name string
		if err := arows.Scan(&id, &name); err != nil {
			return nil, s.translate("list tokens", err)
		}
		if t := byID[id]; t != nil {
			t.Projects = append(t.Projects, name)
		}
	}
	return out, s.translate("list tokens", arows.Err())
}

// RevokeToken marks a token revoked; the first revocation's time stands.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`), ts(at), id)
	if err != nil {
		return s.translate("revoke token", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.translate("revoke token", err)
	} else if n == 0 {
		return notFound("token", id)
	}
	// Its sessions end with it. Authentication refuses them anyway (the token is checked on
	// every use); deleting them here keeps the table honest.
	_, err = s.w.ExecContext(ctx, s.q(`DELETE FROM ui_sessions WHERE token_id = ?`), id)
	return s.translate("revoke token", err)
}

// TouchToken moves a token's last use forward to at.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, s.q(`UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`),
		ts(at), id, ts(at))
	return s.translate("touch token", err)
}
