-- Web UI sessions: the browser holds a random secret, the store its SHA-256 hash. A session
-- belongs to a token and goes with it.
CREATE TABLE ui_sessions (
	hash BYTEA PRIMARY KEY,
	token_id TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
	created_at BIGINT NOT NULL,
	idle_expires_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
