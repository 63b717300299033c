// Package service holds the rules of ubihooks, written once for every store and every
// front end (API, UI, CLI): validation, defaults, sealing of secrets, event fan-out, tests,
// signing keys and requests.
package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/secret"
)

// Config holds the service's dependencies.
type Config struct {
	Store ubihooks.Store
	Box   *secret.Box
	// NowFunc returns the current time; time.Now by default.
	NowFunc func() time.Time
	Logger  *slog.Logger
	// KeyOverlap is how long a rotated-out signing key stays published (default 7 days).
	KeyOverlap time.Duration
}

// Service implements the rules on top of a Store.
type Service struct {
	store      ubihooks.Store
	box        *secret.Box
	now        func() time.Time
	log        *slog.Logger
	keyOverlap time.Duration
	signer     signerCache
	requests   requestWaiters
	// draining ends when the server shuts down: direct requests stop waiting for their runs.
	draining context.Context
	drain    context.CancelFunc
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, box: cfg.Box, now: cfg.NowFunc, log: cfg.Logger, keyOverlap: cfg.KeyOverlap}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keyOverlap == 0 {
		s.keyOverlap = 7 * 24 * time.Hour
	}
	s.requests.init()
	s.draining, s.drain = context.WithCancel(context.Background())
	return s
}

// Drain answers every direct request that waits for its run, and those that come later,
// without waiting: the server is shutting down, and a run may outlast its grace. The
// requests themselves run on (here until the shutdown cuts them, or on another server).
func (s *Service) Drain() { s.drain() }

// Now returns the service clock's current time in UTC, at microsecond precision (what the
// stores keep).
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func newID() string { return ubihooks.NewID() }

// TokenPrefix starts every API token, so that leaked tokens are easy to recognise.
const TokenPrefix = "ubh_"

// HashToken returns the stored form of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NormalizeToken strips an "Authorization" value down to the token: "Token <t>", "Bearer
// <t>" and a bare token are accepted (the R client sends what the user gives it).
func NormalizeToken(header string) string {
	header = strings.TrimSpace(header)
	if k, v, ok := strings.Cut(header, " "); ok && (strings.EqualFold(k, "token") || strings.EqualFold(k, "bearer")) {
		return strings.TrimSpace(v)
	}
	return header
}

// CreateProject creates a project (and grants it to the calling token, if any).
func (s *Service) CreateProject(ctx context.Context, name, organization, tokenID string) (*ubihooks.Project, error) {
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
	if err := s.store.CreateProject(ctx, p); err != nil {
		return nil, err
	}
	if tokenID != "" {
		if err := s.store.GrantAccess(ctx, tokenID, p.ID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// GetProject finds a project by name.
func (s *Service) GetProject(ctx context.Context, name string) (*ubihooks.Project, error) {
	return s.store.GetProject(ctx, name)
}

// CreateToken creates a token for a project, creating the project if needed, and returns
// the token's secret: it is not stored and cannot be shown again.
func (s *Service) CreateToken(ctx context.Context, project, organization, name string) (string, error) {
	p, err := s.store.GetProject(ctx, project)
	if ubihooks.IsNotFound(err) {
		if organization == "" {
			organization = "default"
		}
		p, err = s.CreateProject(ctx, project, organization, "")
		if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT {
			p, err = s.store.GetProject(ctx, project)
		}
	}
	if err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	t := &ubihooks.Token{ID: newID(), ProjectID: p.ID, Hash: HashToken(token), Name: name, CreatedAt: s.Now()}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return "", err
	}
	return token, nil
}

// Authenticate checks an Authorization header value. With a project name it returns that
// project, or EFORBIDDEN when the token may not use it.
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
