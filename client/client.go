// Package client is a Go client for the ubihooks API: the UbiOps-compatible webhooks API
// (v2.1) and ubihooks' extensions (delivery history, signing keys).
//
// Every method takes a context, sends JSON with the project's token and returns the
// decoded response. A non-2xx answer is returned as an *Error carrying the HTTP status and
// the server's message:
//
//	c := client.New("http://127.0.0.1:8080", token)
//	w, err := c.GetWebhook(ctx, "my-project", "my-webhook")
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound { ... }
//
// Request bodies are the root package's types (ubihooks.WebhookCreate and friends). Like
// UbiOps' Python client, the client leaves out every null attribute of a body, so a nil
// pointer means "not sent" (and, in a PATCH, "unchanged").
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
)

// APIPath is the path under which the API is served.
const APIPath = "/v2.1"

// Client calls the ubihooks API. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[:port]/prefix/v2.1, no trailing slash
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its calls with h instead of a client with a 60 s
// timeout.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) { c.http = h }
}

// WithUserAgent sets the User-Agent header of every call.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client for the API at baseURL with an API token. baseURL is the API root
// as UbiOps' clients take it (e.g. "https://hooks.example.com/v2.1"); when its path is
// empty or "/", "/v2.1" is appended, so "http://127.0.0.1:8080" works too. The token is
// sent as "Authorization: Token <token>" unless it already has a scheme ("Token abc").
func New(baseURL, token string, opts ...Option) *Client {
	base := strings.TrimRight(baseURL, "/")
	if u, err := url.Parse(base); err == nil && (u.Path == "" || u.Path == "/") {
		base += APIPath
	}
	c := &Client{base: base, token: token, http: &http.Client{Timeout: 60 * time.Second},
		userAgent: "ubihooks-go/" + ubihooks.Release}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the API root the client calls, ending in "/v2.1".
func (c *Client) BaseURL() string { return c.base }

// Error is a non-2xx answer of the API.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's {"error": "..."} message, or the raw body (or the status
	// text) when the body is not in that form.
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("ubihooks: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// StatusCode returns the HTTP status of an *Error in err's chain, or 0 when err is nil or
// did not come from an API answer (a connection error, for example).
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports whether err is an API answer with status 404.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// path joins path segments, escaping each with url.PathEscape so that a name containing
// "/" stays one segment.
func path(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// do sends one call. body is marshalled to JSON with null attributes left out; out, when
// not nil, receives the decoded response.
func (c *Client) do(ctx context.Context, method, p string, query url.Values, body, out any) error {
	_, err := c.doRaw(ctx, method, p, query, body, out)
	return err
}

func (c *Client) doRaw(ctx context.Context, method, p string, query url.Values, body, out any) ([]byte, error) {
	u := c.base + p
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := marshalBody(body)
		if err != nil {
			return nil, fmt.Errorf("ubihooks: encode %s %s body: %w", method, p, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		auth := c.token
		if !strings.Contains(auth, " ") {
			auth = "Token " + auth
		}
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("ubihooks: read %s %s response: %w", method, p, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseError(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("ubihooks: decode %s %s response: %w", method, p, err)
		}
	}
	return b, nil
}

// one sends a call whose answer is one T.
func one[T any](ctx context.Context, c *Client, method, p string, query url.Values, body any) (*T, error) {
	var out T
	if err := c.do(ctx, method, p, query, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// many sends a call whose answer is a JSON array of T.
func many[T any](ctx context.Context, c *Client, method, p string, query url.Values, body any) ([]T, error) {
	var out []T
	if err := c.do(ctx, method, p, query, body, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// parseError builds an *Error from a non-2xx body: {"error": ...}, then
// {"error_message": ...} (the order UbiOps' clients use), else the raw body.
func parseError(status int, body []byte) *Error {
	var m struct {
		Error        *string `json:"error"`
		ErrorMessage *string `json:"error_message"`
	}
	msg := ""
	if json.Unmarshal(body, &m) == nil {
		switch {
		case m.Error != nil:
			msg = *m.Error
		case m.ErrorMessage != nil:
			msg = *m.ErrorMessage
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{StatusCode: status, Message: msg}
}

// marshalBody encodes v as JSON and removes every null attribute of every object, as
// UbiOps' Python client does, so that an absent pointer is never sent as null.
func marshalBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(dropNulls(tree)); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = dropNulls(e)
		}
	case []any:
		for i, e := range x {
			x[i] = dropNulls(e)
		}
	}
	return v
}

// Status reports whether the service is up (GET /status).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return one[Status](ctx, c, http.MethodGet, "/status", nil, nil)
}

// CreateProject creates a project; the calling token gets access to it.
func (c *Client) CreateProject(ctx context.Context, in ProjectCreate) (*Project, error) {
	return one[Project](ctx, c, http.MethodPost, "/projects", nil, in)
}

// GetProject returns a project.
func (c *Client) GetProject(ctx context.Context, project string) (*Project, error) {
	return one[Project](ctx, c, http.MethodGet, path("projects", project), nil, nil)
}

// ListProjects lists the projects the token may use.
func (c *Client) ListProjects(ctx context.Context) ([]Project, error) {
	return many[Project](ctx, c, http.MethodGet, "/projects", nil, nil)
}

// The calls deployments and pipelines share; kind is "deployments" or "pipelines".
func (c *Client) createObject(ctx context.Context, project, kind string, in ubihooks.ObjectCreate) (*Object, error) {
	return one[Object](ctx, c, http.MethodPost, path("projects", project, kind), nil, in)
}

func (c *Client) getObject(ctx context.Context, project, kind, name string) (*Object, error) {
	return one[Object](ctx, c, http.MethodGet, path("projects", project, kind, name), nil, nil)
}

func (c *Client) listObjects(ctx context.Context, project, kind string, labels map[string]string) ([]Object, error) {
	return many[Object](ctx, c, http.MethodGet, path("projects", project, kind), labelQuery(labels), nil)
}

func (c *Client) updateObject(ctx context.Context, project, kind, name string, in ubihooks.ObjectUpdate) (*Object, error) {
	return one[Object](ctx, c, http.MethodPatch, path("projects", project, kind, name), nil, in)
}

func (c *Client) deleteObject(ctx context.Context, project, kind, name string) error {
	return c.do(ctx, http.MethodDelete, path("projects", project, kind, name), nil, nil, nil)
}

// labelQuery renders a label filter as labels=k1:v1,k2:v2 (keys sorted).
func labelQuery(labels map[string]string) url.Values {
	if len(labels) == 0 {
		return nil
	}
	pairs := make([]string, 0, len(labels))
	for _, k := range ubihooks.SortedLabelKeys(labels) {
		pairs = append(pairs, k+":"+labels[k])
	}
	return url.Values{"labels": {strings.Join(pairs, ",")}}
}

// CreateDeployment creates a deployment.
func (c *Client) CreateDeployment(ctx context.Context, project string, in ubihooks.ObjectCreate) (*Deployment, error) {
	return c.createObject(ctx, project, "deployments", in)
}

// GetDeployment returns a deployment.
func (c *Client) GetDeployment(ctx context.Context, project, deployment string) (*Deployment, error) {
	return c.getObject(ctx, project, "deployments", deployment)
}

// ListDeployments lists a project's deployments; labels, when not empty, keeps those
// having every pair.
func (c *Client) ListDeployments(ctx context.Context, project string, labels map[string]string) ([]Deployment, error) {
	return c.listObjects(ctx, project, "deployments", labels)
}

// UpdateDeployment changes a deployment (nil fields of in are unchanged).
func (c *Client) UpdateDeployment(ctx context.Context, project, deployment string, in ubihooks.ObjectUpdate) (*Deployment, error) {
	return c.updateObject(ctx, project, "deployments", deployment, in)
}

// DeleteDeployment deletes a deployment with its versions, webhooks and requests.
func (c *Client) DeleteDeployment(ctx context.Context, project, deployment string) error {
	return c.deleteObject(ctx, project, "deployments", deployment)
}

// CreatePipeline creates a pipeline.
func (c *Client) CreatePipeline(ctx context.Context, project string, in ubihooks.ObjectCreate) (*Pipeline, error) {
	return c.createObject(ctx, project, "pipelines", in)
}

// GetPipeline returns a pipeline.
func (c *Client) GetPipeline(ctx context.Context, project, pipeline string) (*Pipeline, error) {
	return c.getObject(ctx, project, "pipelines", pipeline)
}

// ListPipelines lists a project's pipelines; labels, when not empty, keeps those having
// every pair.
func (c *Client) ListPipelines(ctx context.Context, project string, labels map[string]string) ([]Pipeline, error) {
	return c.listObjects(ctx, project, "pipelines", labels)
}

// UpdatePipeline changes a pipeline (nil fields of in are unchanged).
func (c *Client) UpdatePipeline(ctx context.Context, project, pipeline string, in ubihooks.ObjectUpdate) (*Pipeline, error) {
	return c.updateObject(ctx, project, "pipelines", pipeline, in)
}

// DeletePipeline deletes a pipeline with its versions, webhooks and requests.
func (c *Client) DeletePipeline(ctx context.Context, project, pipeline string) error {
	return c.deleteObject(ctx, project, "pipelines", pipeline)
}

func (c *Client) createVersion(ctx context.Context, project, kind, object string, in ubihooks.VersionCreate) (*Version, error) {
	return one[Version](ctx, c, http.MethodPost, path("projects", project, kind, object, "versions"), nil, in)
}

func (c *Client) getVersion(ctx context.Context, project, kind, object, version string) (*Version, error) {
	return one[Version](ctx, c, http.MethodGet, path("projects", project, kind, object, "versions", version), nil, nil)
}

func (c *Client) listVersions(ctx context.Context, project, kind, object string, labels map[string]string) ([]Version, error) {
	return many[Version](ctx, c, http.MethodGet, path("projects", project, kind, object, "versions"), labelQuery(labels), nil)
}

func (c *Client) updateVersion(ctx context.Context, project, kind, object, version string, in ubihooks.VersionUpdate) (*Version, error) {
	return one[Version](ctx, c, http.MethodPatch, path("projects", project, kind, object, "versions", version), nil, in)
}

func (c *Client) deleteVersion(ctx context.Context, project, kind, object, version string) error {
	return c.do(ctx, http.MethodDelete, path("projects", project, kind, object, "versions", version), nil, nil, nil)
}

// CreateDeploymentVersion creates a version of a deployment; the first becomes the
// default.
func (c *Client) CreateDeploymentVersion(ctx context.Context, project, deployment string, in ubihooks.VersionCreate) (*Version, error) {
	return c.createVersion(ctx, project, "deployments", deployment, in)
}

// GetDeploymentVersion returns a version of a deployment.
func (c *Client) GetDeploymentVersion(ctx context.Context, project, deployment, version string) (*Version, error) {
	return c.getVersion(ctx, project, "deployments", deployment, version)
}

// ListDeploymentVersions lists the versions of a deployment; labels, when not empty,
// keeps those having every pair.
func (c *Client) ListDeploymentVersions(ctx context.Context, project, deployment string, labels map[string]string) ([]Version, error) {
	return c.listVersions(ctx, project, "deployments", deployment, labels)
}

// UpdateDeploymentVersion changes a version of a deployment (nil fields of in are
// unchanged).
func (c *Client) UpdateDeploymentVersion(ctx context.Context, project, deployment, version string, in ubihooks.VersionUpdate) (*Version, error) {
	return c.updateVersion(ctx, project, "deployments", deployment, version, in)
}

// DeleteDeploymentVersion deletes a version of a deployment.
func (c *Client) DeleteDeploymentVersion(ctx context.Context, project, deployment, version string) error {
	return c.deleteVersion(ctx, project, "deployments", deployment, version)
}

// CreatePipelineVersion creates a version of a pipeline; the first becomes the default.
func (c *Client) CreatePipelineVersion(ctx context.Context, project, pipeline string, in ubihooks.VersionCreate) (*Version, error) {
	return c.createVersion(ctx, project, "pipelines", pipeline, in)
}

// GetPipelineVersion returns a version of a pipeline.
func (c *Client) GetPipelineVersion(ctx context.Context, project, pipeline, version string) (*Version, error) {
	return c.getVersion(ctx, project, "pipelines", pipeline, version)
}

// ListPipelineVersions lists the versions of a pipeline; labels, when not empty, keeps
// those having every pair.
func (c *Client) ListPipelineVersions(ctx context.Context, project, pipeline string, labels map[string]string) ([]Version, error) {
	return c.listVersions(ctx, project, "pipelines", pipeline, labels)
}

// UpdatePipelineVersion changes a version of a pipeline (nil fields of in are unchanged).
func (c *Client) UpdatePipelineVersion(ctx context.Context, project, pipeline, version string, in ubihooks.VersionUpdate) (*Version, error) {
	return c.updateVersion(ctx, project, "pipelines", pipeline, version, in)
}

// DeletePipelineVersion deletes a version of a pipeline.
func (c *Client) DeletePipelineVersion(ctx context.Context, project, pipeline, version string) error {
	return c.deleteVersion(ctx, project, "pipelines", pipeline, version)
}

// CreateWebhook creates a webhook. Protected header values are write-only: the returned
// webhook lists them with a nil Value.
func (c *Client) CreateWebhook(ctx context.Context, project string, in ubihooks.WebhookCreate) (*Webhook, error) {
	return one[Webhook](ctx, c, http.MethodPost, path("projects", project, "webhooks"), nil, in)
}

// ListWebhooks lists a project's webhooks that match every filter of opts.
func (c *Client) ListWebhooks(ctx context.Context, project string, opts WebhookListOptions) ([]Webhook, error) {
	q := labelQuery(opts.Labels)
	if q == nil {
		q = url.Values{}
	}
	if opts.ObjectType != "" {
		q.Set("object_type", opts.ObjectType)
	}
	if opts.Event != "" {
		q.Set("event", opts.Event)
	}
	return many[Webhook](ctx, c, http.MethodGet, path("projects", project, "webhooks"), q, nil)
}

// GetWebhook returns a webhook.
func (c *Client) GetWebhook(ctx context.Context, project, webhook string) (*Webhook, error) {
	return one[Webhook](ctx, c, http.MethodGet, path("projects", project, "webhooks", webhook), nil, nil)
}

// UpdateWebhook changes a webhook: nil fields of in are unchanged, Headers and Labels
// replace the stored ones wholesale, and a protected header sent without a Value keeps
// its stored secret.
func (c *Client) UpdateWebhook(ctx context.Context, project, webhook string, in ubihooks.WebhookUpdate) (*Webhook, error) {
	return one[Webhook](ctx, c, http.MethodPatch, path("projects", project, "webhooks", webhook), nil, in)
}

// DeleteWebhook deletes a webhook and its delivery history.
func (c *Client) DeleteWebhook(ctx context.Context, project, webhook string) error {
	return c.do(ctx, http.MethodDelete, path("projects", project, "webhooks", webhook), nil, nil, nil)
}

// CreateWebhookTest sends a dummy event to a URL with the given configuration. It
// returns at once, normally with status "pending"; poll GetWebhookTest or use
// WaitWebhookTest.
func (c *Client) CreateWebhookTest(ctx context.Context, project string, in ubihooks.WebhookTestCreate) (*WebhookTest, error) {
	return one[WebhookTest](ctx, c, http.MethodPost, path("projects", project, "webhooks-tests"), nil, in)
}

// GetWebhookTest returns a webhook test.
func (c *Client) GetWebhookTest(ctx context.Context, project, id string) (*WebhookTest, error) {
	return one[WebhookTest](ctx, c, http.MethodGet, path("projects", project, "webhooks-tests", id), nil, nil)
}

// WaitWebhookTest polls a webhook test every interval (250 ms when interval ≤ 0) until it
// is no longer pending or ctx ends, and returns its last state.
func (c *Client) WaitWebhookTest(ctx context.Context, project, id string, interval time.Duration) (*WebhookTest, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		wt, err := c.GetWebhookTest(ctx, project, id)
		if err != nil || wt.Status != TestPending {
			return wt, err
		}
		select {
		case <-ctx.Done():
			return wt, ctx.Err()
		case <-t.C:
		}
	}
}

// SigningKeys returns the published webhook signing keys.
func (c *Client) SigningKeys(ctx context.Context) (*SigningKeys, error) {
	return one[SigningKeys](ctx, c, http.MethodGet, "/signing-keys", nil, nil)
}

// ActiveSigningKeyPEM returns the active signing public key as a PEM block, ready for
// httpsig.ParsePublicKeyPEM.
func (c *Client) ActiveSigningKeyPEM(ctx context.Context) ([]byte, error) {
	return c.doRaw(ctx, http.MethodGet, "/signing-keys/active.pem", nil, nil, nil)
}
