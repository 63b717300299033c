-- Times are integer microseconds since the Unix epoch (UTC). Booleans are 0/1 integers.
CREATE TABLE projects (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	organization_name TEXT NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	hash BLOB NOT NULL UNIQUE,
	name TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);

CREATE TABLE token_access (
	token_id TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	PRIMARY KEY (token_id, project_id)
);

CREATE TABLE objects (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	type TEXT NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	labels TEXT NOT NULL DEFAULT '{}',
	input_type TEXT NOT NULL,
	output_type TEXT NOT NULL,
	input_fields TEXT,
	output_fields TEXT,
	default_version_id TEXT REFERENCES versions (id) ON DELETE SET NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (project_id, type, name)
);

CREATE TABLE versions (
	id TEXT PRIMARY KEY,
	object_id TEXT NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	labels TEXT NOT NULL DEFAULT '{}',
	environment TEXT NOT NULL DEFAULT '',
	backend_url TEXT NOT NULL DEFAULT '',
	concurrency INTEGER NOT NULL DEFAULT 0,
	pipeline TEXT,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (object_id, name)
);

CREATE TABLE webhooks (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	object_id TEXT NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
	version_id TEXT REFERENCES versions (id) ON DELETE CASCADE,
	event TEXT NOT NULL,
	url TEXT NOT NULL,
	host TEXT NOT NULL,
	headers BLOB NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	labels TEXT NOT NULL DEFAULT '{}',
	timeout_ms INTEGER NOT NULL,
	enabled INTEGER NOT NULL,
	retry INTEGER NOT NULL,
	include_result INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (project_id, name)
);
CREATE INDEX webhooks_fanout ON webhooks (object_id, event);

CREATE TABLE events (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	project_name TEXT NOT NULL,
	type TEXT NOT NULL,
	object_type TEXT NOT NULL,
	object_id TEXT NOT NULL,
	object_name TEXT NOT NULL,
	version_id TEXT NOT NULL,
	version_name TEXT NOT NULL,
	default_version INTEGER NOT NULL,
	request_id TEXT NOT NULL,
	status TEXT NOT NULL,
	result BLOB,
	result_size INTEGER NOT NULL DEFAULT 0,
	test INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE deliveries (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
	webhook_id TEXT REFERENCES webhooks (id) ON DELETE CASCADE,
	test_id TEXT,
	url TEXT NOT NULL,
	host TEXT NOT NULL,
	headers BLOB NOT NULL,
	timeout_ms INTEGER NOT NULL,
	retry INTEGER NOT NULL,
	include_result INTEGER NOT NULL,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease_owner TEXT,
	lease_expires_at INTEGER,
	last_error TEXT,
	last_status_code INTEGER,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	completed_at INTEGER,
	UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_lease ON deliveries (lease_expires_at) WHERE status = 'sending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX deliveries_done ON deliveries (completed_at) WHERE status IN ('succeeded', 'failed');

CREATE TABLE attempts (
	id INTEGER PRIMARY KEY,
	delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	number INTEGER NOT NULL,
	started_at INTEGER NOT NULL,
	duration_us INTEGER NOT NULL,
	status_code INTEGER NOT NULL,
	error_class TEXT NOT NULL,
	error TEXT NOT NULL,
	response_body TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, number);

CREATE TABLE webhook_tests (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	status TEXT NOT NULL,
	error_message TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE signing_keys (
	id TEXT PRIMARY KEY,
	key_id TEXT NOT NULL UNIQUE,
	public_key BLOB NOT NULL,
	sealed_private BLOB NOT NULL,
	active INTEGER UNIQUE,
	created_at INTEGER NOT NULL,
	retired_at INTEGER
);

CREATE TABLE requests (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	object_type TEXT NOT NULL,
	object_id TEXT NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
	version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
	status TEXT NOT NULL,
	input BLOB,
	result BLOB,
	error_message TEXT NOT NULL DEFAULT '',
	timeout_ms INTEGER NOT NULL,
	batch INTEGER NOT NULL DEFAULT 0,
	parent_id TEXT,
	sequence INTEGER NOT NULL DEFAULT 0,
	origin TEXT NOT NULL DEFAULT '',
	attempts INTEGER NOT NULL DEFAULT 0,
	lease_owner TEXT,
	lease_expires_at INTEGER,
	created_at INTEGER NOT NULL,
	started_at INTEGER,
	completed_at INTEGER
);
CREATE INDEX requests_pending ON requests (created_at) WHERE status = 'pending';
CREATE INDEX requests_lease ON requests (lease_expires_at) WHERE status = 'processing';
CREATE INDEX requests_object ON requests (object_id, created_at);
CREATE INDEX requests_parent ON requests (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX requests_done ON requests (completed_at) WHERE status IN ('completed', 'failed', 'cancelled');
