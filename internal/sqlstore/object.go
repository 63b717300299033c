package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/ubihooks/ubihooks"
)

// CreateProject inserts a project.
func (s *Store) CreateProject(ctx context.Context, p *ubihooks.Project) error {
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO projects (id, name, organization_name, created_by, created_at) VALUES (?, ?, ?, ?, ?)`),
		p.ID, p.Name, p.OrganizationName, p.CreatedBy, ts(p.CreatedAt))
	if err != nil && s.d.IsUnique(err) {
		return ubihooks.Errorf(ubihooks.ECONFLICT, "project %q already exists", p.Name)
	}
	return s.translate("create project", err)
}

// GetProject finds a project by name.
func (s *Store) GetProject(ctx context.Context, name string) (*ubihooks.Project, error) {
	p, err := scanProject(s.r.QueryRowContext(ctx, s.q(`SELECT `+projectColumns+` FROM projects p WHERE p.name = ?`), name))
	if err == sql.ErrNoRows {
		return nil, notFound("project", name)
	}
	if err != nil {
		return nil, s.translate("get project", err)
	}
	return p, nil
}

const projectColumns = `p.id, p.name, p.organization_name, p.created_by, p.created_at`

func scanProject(row interface{ Scan(...any) error }) (*ubihooks.Project, error) {
	var p ubihooks.Project
	var created sql.NullInt64
	if err := row.Scan(&p.ID, &p.Name, &p.OrganizationName, &p.CreatedBy, &created); err != nil {
		return nil, err
	}
	p.CreatedAt = fromTS(created)
	return &p, nil
}

// CreateToken stores a token and grants it its project.
func (s *Store) CreateToken(ctx context.Context, t *ubihooks.Token) error {
	return s.tx(ctx, func(tx execer) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO tokens (id, project_id, hash, name, admin, created_at, expires_at, last_used_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			t.ID, t.ProjectID, t.Hash, t.Name, b2i(t.Admin), ts(t.CreatedAt), ts(t.ExpiresAt), ts(t.LastUsedAt), ts(t.RevokedAt)); err != nil {
			return s.translate("create token", err)
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO token_access (token_id, project_id) VALUES (?, ?)`), t.ID, t.ProjectID)
		return s.translate("grant token", err)
	})
}

// GrantAccess lets a token use a project.
func (s *Store) GrantAccess(ctx context.Context, tokenID, projectID string) error {
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO token_access (token_id, project_id) VALUES (?, ?) ON CONFLICT DO NOTHING`), tokenID, projectID)
	return s.translate("grant access", err)
}

// Authenticate finds a token by hash and tells whether it may use the project.
func (s *Store) Authenticate(ctx context.Context, hash []byte, project string) (*ubihooks.Token, bool, error) {
	var allowed int
	t, err := scanToken(s.r.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+`,
		(SELECT COUNT(*) FROM token_access a JOIN projects p ON p.id = a.project_id WHERE a.token_id = t.id AND p.name = ?)
		FROM tokens t WHERE t.hash = ?`), project, hash), &allowed)
	if err == sql.ErrNoRows {
		return nil, false, ubihooks.Errorf(ubihooks.ENOTFOUND, "token not found")
	}
	if err != nil {
		return nil, false, s.translate("authenticate", err)
	}
	return t, allowed > 0, nil
}

const objectColumns = `o.id, o.project_id, o.type, o.name, o.description, o.labels, o.input_type, o.output_type,
	o.input_fields, o.output_fields, COALESCE(v.name, ''), o.created_at, o.updated_at`

const objectFrom = ` FROM objects o LEFT JOIN versions v ON v.id = o.default_version_id `

func scanObject(row interface{ Scan(...any) error }) (*ubihooks.Object, error) {
	var o ubihooks.Object
	var labels, inFields, outFields sql.NullString
	var created, updated sql.NullInt64
	if err := row.Scan(&o.ID, &o.ProjectID, &o.Type, &o.Name, &o.Description, &labels, &o.InputType, &o.OutputType,
		&inFields, &outFields, &o.DefaultVersion, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if o.Labels, err = parseLabels(labels); err != nil {
		return nil, err
	}
	if inFields.Valid && inFields.String != "" {
		if err := json.Unmarshal([]byte(inFields.String), &o.InputFields); err != nil {
			return nil, fmt.Errorf("sqlstore: decode input fields: %w", err)
		}
	}
	if outFields.Valid && outFields.String != "" {
		if err := json.Unmarshal([]byte(outFields.String), &o.OutputFields); err != nil {
			return nil, fmt.Errorf("sqlstore: decode output fields: %w", err)
		}
	}
	o.CreatedAt, o.UpdatedAt = fromTS(created), fromTS(updated)
	return &o, nil
}

// CreateObject inserts a deployment or pipeline.
func (s *Store) CreateObject(ctx context.Context, o *ubihooks.Object) error {
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO objects (id, project_id, type, name, description, labels, input_type,
		output_type, input_fields, output_fields, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		o.ID, o.ProjectID, string(o.Type), o.Name, o.Description, labelsText(o.Labels), o.InputType, o.OutputType,
		jsonText(o.InputFields), jsonText(o.OutputFields), ts(o.CreatedAt), ts(o.UpdatedAt))
	if err != nil && s.d.IsUnique(err) {
		return ubihooks.Errorf(ubihooks.ECONFLICT, "a %s named %q already exists in this project", o.Type, o.Name)
	}
	return s.translate("create "+string(o.Type), err)
}

// GetObject finds an object by name.
func (s *Store) GetObject(ctx context.Context, projectID string, t ubihooks.ObjectType, name string) (*ubihooks.Object, error) {
	o, err := scanObject(s.r.QueryRowContext(ctx, s.q(`SELECT `+objectColumns+objectFrom+
		`WHERE o.project_id = ? AND o.type = ? AND o.name = ?`), projectID, string(t), name))
	if err == sql.ErrNoRows {
		return nil, notFound(string(t), name)
	}
	if err != nil {
		return nil, s.translate("get "+string(t), err)
	}
	return o, nil
}

// ListObjects lists a project's objects of one type.
func (s *Store) ListObjects(ctx context.Context, projectID string, t ubihooks.ObjectType) ([]*ubihooks.Object, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+objectColumns+objectFrom+
		`WHERE o.project_id = ? AND o.type = ? ORDER BY o.name`), projectID, string(t))
	if err != nil {
		return nil, s.translate("list objects", err)
	}
	defer rows.Close()
	out := []*ubihooks.Object{}
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, s.translate("list objects", err)
		}
		out = append(out, o)
	}
	return out, s.translate("list objects", rows.Err())
}

// UpdateObject writes the mutable fields of an object.
func (s *Store) UpdateObject(ctx context.Context, o *ubihooks.Object) error {
	return s.tx(ctx, func(tx execer) error {
		var def any
		if o.DefaultVersion != "" {
			var id string
			err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM versions WHERE object_id = ? AND name = ?`), o.ID, o.DefaultVersion).Scan(&id)
			if err == sql.ErrNoRows {
				return notFound("version", o.DefaultVersion)
			}
			if err != nil {
				return s.translate("update object", err)
			}
			def = id
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE objects SET name = ?, description = ?, labels = ?, default_version_id = ?,
			updated_at = ? WHERE id = ?`), o.Name, o.Description, labelsText(o.Labels), def, ts(o.UpdatedAt), o.ID)
		if err != nil && s.d.IsUnique(err) {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "a %s named %q already exists in this project", o.Type, o.Name)
		}
		if err != nil {
			return s.translate("update object", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(string(o.Type), o.Name)
		}
		return nil
	})
}

// DeleteObject deletes an object; versions, webhooks, deliveries and requests cascade.
func (s *Store) DeleteObject(ctx context.Context, projectID string, t ubihooks.ObjectType, name string) error {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM objects WHERE project_id = ? AND type = ? AND name = ?`), projectID, string(t), name)
	if err != nil {
		return s.translate("delete object", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(string(t), name)
	}
	return nil
}

const versionColumns = `v.id, v.object_id, v.project_id, o.type, o.name, v.name, v.description, v.labels, v.environment,
	v.backend_url, v.concurrency, v.pipeline, CASE WHEN o.default_version_id = v.id THEN 1 ELSE 0 END, v.created_at, v.updated_at`

const versionFrom = ` FROM versions v JOIN objects o ON o.id = v.object_id `

func scanVersion(row interface{ Scan(...any) error }) (*ubihooks.Version, error) {
	var v ubihooks.Version
	var labels, pipeline sql.NullString
	var def int
	var created, updated sql.NullInt64
	if err := row.Scan(&v.ID, &v.ObjectID, &v.ProjectID, &v.ObjectType, &v.ObjectName, &v.Name, &v.Description, &labels,
		&v.Environment, &v.BackendURL, &v.Concurrency, &pipeline, &def, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if v.Labels, err = parseLabels(labels); err != nil {
		return nil, err
	}
	if pipeline.Valid && pipeline.String != "" && pipeline.String != "null" {
		v.Pipeline = &ubihooks.PipelineSpec{}
		if err := json.Unmarshal([]byte(pipeline.String), v.Pipeline); err != nil {
			return nil, fmt.Errorf("sqlstore: decode pipeline: %w", err)
		}
	}
	v.Default = def == 1
	v.CreatedAt, v.UpdatedAt = fromTS(created), fromTS(updated)
	return &v, nil
}

func pipelineText(p *ubihooks.PipelineSpec) any {
	if p == nil {
		return nil
	}
	return jsonText(p)
}

// CreateVersion inserts a version; the first one becomes the object's default.
func (s *Store) CreateVersion(ctx context.Context, v *ubihooks.Version) error {
	return s.tx(ctx, func(tx execer) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO versions (id, object_id, project_id, name, description, labels, environment,
			backend_url, concurrency, pipeline, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			v.ID, v.ObjectID, v.ProjectID, v.Name, v.Description, labelsText(v.Labels), v.Environment, v.BackendURL,
			v.Concurrency, pipelineText(v.Pipeline), ts(v.CreatedAt), ts(v.UpdatedAt))
		if err != nil && s.d.IsUnique(err) {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "version %q already exists", v.Name)
		}
		if err != nil {
			return s.translate("create version", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE objects SET default_version_id = ? WHERE id = ? AND default_version_id IS NULL`), v.ID, v.ObjectID)
		if err != nil {
			return s.translate("create version", err)
		}
		n, _ := res.RowsAffected()
		v.Default = n == 1
		return nil
	})
}

// GetVersion finds a version by name.
func (s *Store) GetVersion(ctx context.Context, objectID, name string) (*ubihooks.Version, error) {
	v, err := scanVersion(s.r.QueryRowContext(ctx, s.q(`SELECT `+versionColumns+versionFrom+`WHERE v.object_id = ? AND v.name = ?`), objectID, name))
	if err == sql.ErrNoRows {
		return nil, notFound("version", name)
	}
	if err != nil {
		return nil, s.translate("get version", err)
	}
	return v, nil
}

// ListVersions lists an object's versions.
func (s *Store) ListVersions(ctx context.Context, objectID string) ([]*ubihooks.Version, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+versionColumns+versionFrom+`WHERE v.object_id = ? ORDER BY v.name`), objectID)
	if err != nil {
		return nil, s.translate("list versions", err)
	}
	defer rows.Close()
	out := []*ubihooks.Version{}
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, s.translate("list versions", err)
		}
		out = append(out, v)
	}
	return out, s.translate("list versions", rows.Err())
}

// UpdateVersion writes the mutable fields of a version.
func (s *Store) UpdateVersion(ctx context.Context, v *ubihooks.Version) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE versions SET description = ?, labels = ?, environment = ?, backend_url = ?,
		concurrency = ?, pipeline = ?, updated_at = ? WHERE id = ?`), v.Description, labelsText(v.Labels), v.Environment,
		v.BackendURL, v.Concurrency, pipelineText(v.Pipeline), ts(v.UpdatedAt), v.ID)
	if err != nil {
		return s.translate("update version", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("version", v.Name)
	}
	return nil
}

// DeleteVersion deletes a version; its webhooks and requests cascade.
func (s *Store) DeleteVersion(ctx context.Context, objectID, name string) error {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM versions WHERE object_id = ? AND name = ?`), objectID, name)
	if err != nil {
		return s.translate("delete version", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("version", name)
	}
	return nil
}
