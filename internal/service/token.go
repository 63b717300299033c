package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/ubihooks/ubihooks"
)

// touchEvery is how stale a token's recorded last use may get: a busy token costs one write
// a minute rather than one per call, and "last used" stays accurate to the minute.
const touchEvery = time.Minute

// errNotAdmin is the one refusal of admin operations to project tokens. Creating a project
// answers it before looking at the name, so that it never tells whether a name is taken.
func errNotAdmin(what string) error {
	return ubihooks.Errorf(ubihooks.EFORBIDDEN, "this token may not %s: that needs an admin token (ubihooks token create --admin)", what)
}

// CreateProject creates a project. by is the calling token, nil for the operator: a token
// must be an admin token, and it is granted the project it creates.
func (s *Service) CreateProject(ctx context.Context, name, organization string, by *ubihooks.Token) (*ubihooks.Project, error) {
	if by != nil && !by.Admin {
		return nil, errNotAdmin("create projects")
	}
	if err := ubihooks.ValidateName("name", name); err != nil {
		return nil, err
	}
	if organization == "" {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "organization_name is required")
	}
	if err := ubihooks.ValidateName("organization_name", organization); err != nil {
		return nil, err
	}
	p := &ubihooks.Project{ID: newID(), Name: name, OrganizationName: organization, CreatedAt: s.Now()}
	if by != nil {
		p.CreatedBy = by.ID
	}
	if err := s.store.CreateProject(ctx, p); err != nil {
		return nil, err
	}
	if by != nil {
		if err := s.store.GrantAccess(ctx, by.ID, p.ID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// GetProject finds a project by name.
func (s *Service) GetProject(ctx context.Context, name string) (*ubihooks.Project, error) {
	return s.store.GetProject(ctx, name)
}

// TokenCreate describes a token that the operator creates.
type TokenCreate struct {
	// Project is the token's project; it is created when it does not exist.
	Project string
	// Organization is the organization of a new project ("default" when empty).
	Organization string
	// Name is a note to recognise the token by.
	Name string
	// Admin lets the token create projects and list and revoke tokens.
	Admin bool
	// ExpiresIn is how long the token works; zero means until it is revoked.
	ExpiresIn time.Duration
	// Join allows joining an existing project that a token created through the API. Without
	// it the operator could unknowingly receive a token into a project that someone else
	// made, and that someone would read whatever the operator puts there.
	Join bool
}

// NewToken is a created token with its secret.
type NewToken struct {
	// Secret is the token to send; it is not stored and cannot be shown again.
	Secret  string
	Token   *ubihooks.Token
	Project *ubihooks.Project
	// CreatedProject tells whether the project was created for the token (else it joined
	// an existing one).
	CreatedProject bool
}

// CreateToken creates a token for a project, creating the project when it does not exist.
// It joins an existing project that a token created through the API only with in.Join.
func (s *Service) CreateToken(ctx context.Context, in TokenCreate) (*NewToken, error) {
	if in.ExpiresIn < 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "expires_in must not be negative")
	}
	out := &NewToken{}
	p, err := s.store.GetProject(ctx, in.Project)
	if ubihooks.IsNotFound(err) {
		if in.Organization == "" {
			in.Organization = "default"
		}
		p, err = s.CreateProject(ctx, in.Project, in.Organization, nil)
		out.CreatedProject = err == nil
		if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT { // created meanwhile
			p, err = s.store.GetProject(ctx, in.Project)
		}
	}
	if err != nil {
		return nil, err
	}
	if !out.CreatedProject && p.CreatedBy != "" && !in.Join {
		return nil, ubihooks.Errorf(ubihooks.ECONFLICT, "project %q was created through the API by token %s, not by the operator: join it only if you trust that token's holder", p.Name, p.CreatedBy)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	out.Secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	now := s.Now()
	t := &ubihooks.Token{ID: newID(), ProjectID: p.ID, Hash: HashToken(out.Secret), Name: in.Name, Admin: in.Admin, CreatedAt: now}
	if in.ExpiresIn > 0 {
		t.ExpiresAt = now.Add(in.ExpiresIn)
	}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	out.Token, out.Project = t, p
	return out, nil
}

// Authenticate checks an Authorization header value: revoked and expired tokens are
// refused. With a project name it returns that project, or EFORBIDDEN when the token may
// not use it. It records the token's use when the recorded one is a minute old.
func (s *Service) Authenticate(ctx context.Context, header, project string) (*ubihooks.Token, *ubihooks.Project, error) {
	token := NormalizeToken(header)
	if token == "" {
		return nil, nil, ubihooks.Errorf(ubihooks.EUNAUTHORIZED, "authentication required: send the header 'Authorization: Token <your token>'")
	}
	tok, allowed, err := s.store.Authenticate(ctx, HashToken(token), project)
	if ubihooks.IsNotFound(err) {
		return nil, nil, ubihooks.Errorf(ubihooks.EUNAUTHORIZED, "invalid token")
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.Now()
	if !tok.RevokedAt.IsZero() {
		return nil, nil, ubihooks.Errorf(ubihooks.EUNAUTHORIZED, "this token was revoked")
	}
	if !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt) {
		return nil, nil, ubihooks.Errorf(ubihooks.EUNAUTHORIZED, "this token expired at %s", tok.ExpiresAt.Format(time.RFC3339))
	}
	if tok.LastUsedAt.IsZero() || now.Sub(tok.LastUsedAt) >= touchEvery {
		// A failed record of the last use is no reason to refuse the call.
		if err := s.store.TouchToken(ctx, tok.ID, now); err != nil {
			s.log.Warn("record token use", slog.String("token", tok.ID), slog.Any("err", err))
		} else {
			tok.LastUsedAt = now
		}
	}
	if project == "" {
		return tok, nil, nil
	}
	if !allowed {
		return nil, nil, ubihooks.Errorf(ubihooks.EFORBIDDEN, "this token has no access to project %q", project)
	}
	p, err := s.store.GetProject(ctx, project)
	if ubihooks.IsNotFound(err) { // granted but deleted meanwhile
		return nil, nil, ubihooks.Errorf(ubihooks.EFORBIDDEN, "this token has no access to project %q", project)
	}
	return tok, p, err
}

// ListProjects lists the projects a token may use.
func (s *Service) ListProjects(ctx context.Context, tokenID string) ([]*ubihooks.Project, error) {
	return s.store.ListProjects(ctx, tokenID)
}

// ListTokens lists the tokens (revoked ones too), or those that may use project when it is
// not empty. by is the calling token, nil for the operator; a token must be an admin token.
// Hashes are left out: nothing outside authentication needs them.
func (s *Service) ListTokens(ctx context.Context, by *ubihooks.Token, project string) ([]*ubihooks.Token, error) {
	if by != nil && !by.Admin {
		return nil, errNotAdmin("list tokens")
	}
	projectID := ""
	if project != "" {
		p, err := s.store.GetProject(ctx, project)
		if err != nil {
			return nil, err
		}
		projectID = p.ID
	}
	toks, err := s.store.ListTokens(ctx, projectID)
	for _, t := range toks {
		t.Hash = nil
	}
	return toks, err
}

// RevokeToken revokes a token by ID; its next call is refused. by is the calling token, nil
// for the operator; a token must be an admin token.
func (s *Service) RevokeToken(ctx context.Context, by *ubihooks.Token, id string) error {
	if by != nil && !by.Admin {
		return errNotAdmin("revoke tokens")
	}
	return s.store.RevokeToken(ctx, id, s.Now())
}
