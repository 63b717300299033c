-- Tokens get a lifecycle (admin rights, an expiry, the last use, a revocation), and projects
-- remember which token created them through the API ('' for the operator's CLI), so that
-- the CLI does not silently hand the operator a token in a project that someone else made.
ALTER TABLE tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE projects ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

-- Before this migration, only the API granted a token a project other than its own, and it
-- did so to the token that created the project: such a grant identifies its creator.
UPDATE projects SET created_by = COALESCE((
	SELECT MIN(a.token_id) FROM token_access a JOIN tokens t ON t.id = a.token_id
	WHERE a.project_id = projects.id AND t.project_id <> projects.id), '');
