package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/ubihooks/ubihooks"
)

// CreateSession stores a web UI session.
func (s *Store) CreateSession(ctx context.Context, ss *ubihooks.Session) error {
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO ui_sessions (hash, token_id, created_at, idle_expires_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
		ss.Hash, ss.TokenID, ts(ss.CreatedAt), ts(ss.IdleExpiresAt), ts(ss.ExpiresAt))
	return s.translate("create session", err)
}

// AuthenticateSession finds a session with its token and the token's access to project.
func (s *Store) AuthenticateSession(ctx context.Context, hash []byte, project string) (*ubihooks.Session, *ubihooks.Token, bool, error) {
	var ss ubihooks.Session
	var created, idle, expires sql.NullInt64
	var allowed int
	t, err := scanToken(s.r.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+`, u.hash, u.token_id, u.created_at, u.idle_expires_at, u.expires_at,
		(SELECT COUNT(*) FROM token_access a JOIN projects p ON p.id = a.project_id WHERE a.token_id = t.id AND p.name = ?)
		FROM ui_sessions u JOIN tokens t ON t.id = u.token_id WHERE u.hash = ?`), project, hash),
		&ss.Hash, &ss.TokenID, &created, &idle, &expires, &allowed)
	if err == sql.ErrNoRows {
		return nil, nil, false, ubihooks.Errorf(ubihooks.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, nil, false, s.translate("authenticate session", err)
	}
	ss.CreatedAt, ss.IdleExpiresAt, ss.ExpiresAt = fromTS(created), fromTS(idle), fromTS(expires)
	return &ss, t, allowed > 0, nil
}

// TouchSession moves a session's idle expiry forward.
func (s *Store) TouchSession(ctx context.Context, hash []byte, idle time.Time) error {
	_, err := s.w.ExecContext(ctx, s.q(`UPDATE ui_sessions SET idle_expires_at = ? WHERE hash = ? AND idle_expires_at < ?`), ts(idle), hash, ts(idle))
	return s.translate("touch session", err)
}

// DeleteSession removes a session.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := s.w.ExecContext(ctx, s.q(`DELETE FROM ui_sessions WHERE hash = ?`), hash)
	return s.translate("delete session", err)
}

// DeleteExpiredSessions removes expired sessions and those of revoked tokens.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM ui_sessions WHERE idle_expires_at <= ? OR expires_at <= ?
		OR token_id IN (SELECT id FROM tokens WHERE revoked_at IS NOT NULL)`), ts(now), ts(now))
	if err != nil {
		return 0, s.translate("delete expired sessions", err)
	}
	n, err := res.RowsAffected()
	return int(n), s.translate("delete expired sessions", err)
}
