-- Web UI sessions: the browser holds a random secret, the store its SHA-256 hash. A session
-- belongs to a token and goes with it.
CREATE TABLE ui_sessions (
	hash BLOB PRIMARY KEY,
	token_id TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	idle_expires_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
