package ubihooks

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ObjectType is the kind of object a webhook or request belongs to.
type ObjectType string

// The object types. An experiment is a version of the deployment TrainingDeployment.
const (
	ObjectDeployment ObjectType = "deployment"
	ObjectPipeline   ObjectType = "pipeline"
)

// TrainingDeployment is the deployment whose versions are experiments; a training run is a
// request to one of them.
const TrainingDeployment = "training-base-deployment"

// Valid reports whether t is a known object type.
func (t ObjectType) Valid() bool { return t == ObjectDeployment || t == ObjectPipeline }

// Title is the capitalised name used in human sentences ("Deployment", "Pipeline").
func (t ObjectType) Title() string {
	if t == ObjectPipeline {
		return "Pipeline"
	}
	return "Deployment"
}

// EventType names a request transition a webhook can listen to.
type EventType string

// The eight event types: four per object type.
const (
	EventDeploymentStarted   EventType = "deployment_request_started"
	EventDeploymentCompleted EventType = "deployment_request_completed"
	EventDeploymentFailed    EventType = "deployment_request_failed"
	EventDeploymentFinished  EventType = "deployment_request_finished"
	EventPipelineStarted     EventType = "pipeline_request_started"
	EventPipelineCompleted   EventType = "pipeline_request_completed"
	EventPipelineFailed      EventType = "pipeline_request_failed"
	EventPipelineFinished    EventType = "pipeline_request_finished"
)

// EventTypes lists every event type, in documentation order.
var EventTypes = []EventType{
	EventDeploymentStarted, EventDeploymentCompleted, EventDeploymentFailed, EventDeploymentFinished,
	EventPipelineStarted, EventPipelineCompleted, EventPipelineFailed, EventPipelineFinished,
}

// Valid reports whether e is one of the eight event types.
func (e EventType) Valid() bool {
	for _, v := range EventTypes {
		if e == v {
			return true
		}
	}
	return false
}

// ObjectType returns the object type the event belongs to, from its prefix.
func (e EventType) ObjectType() ObjectType {
	if strings.HasPrefix(string(e), "pipeline_") {
		return ObjectPipeline
	}
	return ObjectDeployment
}

// Kind returns the transition: "started", "completed", "failed" or "finished".
func (e EventType) Kind() string {
	s := string(e)
	return s[strings.LastIndexByte(s, '_')+1:]
}

// EventFor returns the event type of the given object type and kind.
func EventFor(t ObjectType, kind string) EventType {
	return EventType(string(t) + "_request_" + kind)
}

// Webhook limits.
const (
	MaxNameLength        = 64
	MaxDescriptionLength = 400
	DefaultTimeout       = 10 * time.Second
	MaxTimeout           = 30 * time.Second
	MaxHeaders           = 50
	MaxHeaderValueLength = 8192
	MaxLabels            = 50
	MaxLabelLength       = 128
	MaxURLLength         = 2048
)

// Header is one HTTP header a webhook sends. A protected header's value is a write-only
// secret: it is kept only as Sealed (encrypted) once stored, never shown, and decrypted only
// when a delivery is sent.
type Header struct {
	Key       string
	Value     string // plain value; empty for a stored protected header
	Protected bool
	Sealed    []byte // the encrypted value of a protected header
}

// String redacts protected values so that a header can never leak through a log line.
func (h Header) String() string {
	if h.Protected {
		return h.Key + ": [protected]"
	}
	return h.Key + ": " + h.Value
}

// HeaderInput is a header as received from the API. A nil Value on a protected header in an
// update means "keep the stored secret".
type HeaderInput struct {
	Key       string  `json:"key"`
	Value     *string `json:"value"`
	Protected *bool   `json:"protected"`
}

// Webhook is a subscription: one event of one object (optionally one version) sent to a URL.
type Webhook struct {
	ID            string
	ProjectID     string
	Name          string
	ObjectType    ObjectType
	ObjectID      string
	ObjectName    string
	VersionID     string // "" when the webhook follows the object's default version
	Version       string
	URL           string
	Headers       []Header
	Event         EventType
	Description   string
	Labels        map[string]string
	Timeout       time.Duration
	Enabled       bool
	Retry         bool
	IncludeResult bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// WebhookCreate is the body of a create call. Pointers tell "absent" from a zero value.
type WebhookCreate struct {
	Name          string            `json:"name"`
	ObjectType    string            `json:"object_type"`
	ObjectName    string            `json:"object_name"`
	Version       *string           `json:"version"`
	URL           string            `json:"url"`
	Headers       []HeaderInput     `json:"headers"`
	Event         string            `json:"event"`
	Description   *string           `json:"description"`
	Labels        map[string]string `json:"labels"`
	Timeout       *int              `json:"timeout"`
	Enabled       *bool             `json:"enabled"`
	Retry         *bool             `json:"retry"`
	IncludeResult *bool             `json:"include_result"`
}

// WebhookUpdate is the body of a PATCH. Absent fields are unchanged; headers and labels, when
// present, replace the stored ones wholesale. ObjectType, ObjectName and Version exist only
// so that sending them can be refused with a clear message.
type WebhookUpdate struct {
	Name          *string            `json:"name"`
	URL           *string            `json:"url"`
	Headers       *[]HeaderInput     `json:"headers"`
	Event         *string            `json:"event"`
	Description   *string            `json:"description"`
	Labels        *map[string]string `json:"labels"`
	Timeout       *int               `json:"timeout"`
	Enabled       *bool              `json:"enabled"`
	Retry         *bool              `json:"retry"`
	IncludeResult *bool              `json:"include_result"`

	ObjectType json.RawMessage `json:"object_type"`
	ObjectName json.RawMessage `json:"object_name"`
	Version    json.RawMessage `json:"version"`
}

// WebhookTestCreate is the body of a webhook test: a webhook minus name, description,
// labels and enabled.
type WebhookTestCreate struct {
	ObjectType    string        `json:"object_type"`
	ObjectName    string        `json:"object_name"`
	Version       *string       `json:"version"`
	URL           string        `json:"url"`
	Headers       []HeaderInput `json:"headers"`
	Event         string        `json:"event"`
	Timeout       *int          `json:"timeout"`
	Retry         *bool         `json:"retry"`
	IncludeResult *bool         `json:"include_result"`
}

// WebhookFilter selects webhooks in a list call; every set field must match (AND).
type WebhookFilter struct {
	ObjectType ObjectType
	Event      EventType
	Labels     map[string]string
}

// ParseLabelFilter parses "k1:v1,k2:v2": pairs split on ",", each split on its first ":".
// A pair without ":" matches webhooks that have the key with any value, stored as "\x00any".
func ParseLabelFilter(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, ":")
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, Errorf(EINVALID, "labels filter %q: each pair must look like key:value", pair)
		}
		if !ok {
			v = AnyLabelValue
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

// AnyLabelValue in a label filter matches any value of the key.
const AnyLabelValue = "\x00any"

// Match reports whether w passes the filter. Stores may filter in SQL, but must agree with it.
func (f WebhookFilter) Match(w *Webhook) bool {
	if f.ObjectType != "" && w.ObjectType != f.ObjectType {
		return false
	}
	if f.Event != "" && w.Event != f.Event {
		return false
	}
	return MatchLabels(f.Labels, w.Labels)
}

// MatchLabels reports whether have holds every pair of want (AND): the same value, or
// any value where want's is AnyLabelValue. An empty want matches everything. It is the
// label rule of every list filter (webhooks, deployments, pipelines, versions); stores
// that filter in SQL must agree with it.
func MatchLabels(want, have map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		if !ok || (v != AnyLabelValue && got != v) {
			return false
		}
	}
	return true
}

// ValidateName checks an object or webhook name: 1 to 64 characters, printable, no slash
// confusion for humans (any character is accepted in paths because segments are decoded).
func ValidateName(field, name string) error {
	if name == "" {
		return Errorf(EINVALID, "%s is required", field)
	}
	if utf8.RuneCountInString(name) > MaxNameLength {
		return Errorf(EINVALID, "%s must be at most %d characters, got %d", field, MaxNameLength, utf8.RuneCountInString(name))
	}
	if !utf8.ValidString(name) {
		return Errorf(EINVALID, "%s must be valid UTF-8", field)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "%s must not contain control characters", field)
		}
	}
	if strings.TrimSpace(name) != name {
		return Errorf(EINVALID, "%s must not start or end with whitespace", field)
	}
	return nil
}

// ValidateDescription checks a description's length.
func ValidateDescription(d string) error {
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLength {
		return Errorf(EINVALID, "description must be at most %d characters, got %d", MaxDescriptionLength, n)
	}
	return ValidateText("description", d)
}

// ValidateText checks free text: valid UTF-8 without NUL bytes (which PostgreSQL cannot
// store in text, so that both stores accept the same input).
func ValidateText(field, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return Errorf(EINVALID, "%s must be valid UTF-8 text without NUL characters", field)
	}
	return nil
}

// CleanText makes text safe to store in either database: invalid UTF-8 and NUL bytes
// become U+FFFD, and it is cut to at most max bytes at a character boundary.
func CleanText(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ValidateLabels checks label keys and values. Keys may not contain ":" or "," and values
// may not contain ",", because the list filter syntax uses them.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return Errorf(EINVALID, "labels: at most %d labels are allowed, got %d", MaxLabels, len(labels))
	}
	for k, v := range labels {
		switch {
		case k == "":
			return Errorf(EINVALID, "labels: keys must not be empty")
		case len(k) > MaxLabelLength || len(v) > MaxLabelLength:
			return Errorf(EINVALID, "labels: %q: keys and values must be at most %d characters", k, MaxLabelLength)
		case strings.ContainsAny(k, ":,"):
			return Errorf(EINVALID, "labels: key %q must not contain ':' or ','", k)
		case strings.Contains(v, ","):
			return Errorf(EINVALID, "labels: value of %q must not contain ','", k)
		}
	}
	return nil
}

// TimeoutFromSeconds validates a webhook timeout in seconds (1..30; nil means the default).
func TimeoutFromSeconds(s *int) (time.Duration, error) {
	if s == nil {
		return DefaultTimeout, nil
	}
	if *s < 1 || *s > int(MaxTimeout/time.Second) { // compare before multiplying: a huge value would wrap
		return 0, Errorf(EINVALID, "timeout must be between 1 and %d seconds, got %d", int(MaxTimeout/time.Second), *s)
	}
	return time.Duration(*s) * time.Second, nil
}

// ParseEvent validates an event name against the object type it must belong to.
func ParseEvent(objectType ObjectType, s string) (EventType, error) {
	if s == "" {
		return "", Errorf(EINVALID, "event is required")
	}
	e := EventType(s)
	if !e.Valid() {
		return "", Errorf(EINVALID, "event %q is not valid; use one of %s", s, joinEvents())
	}
	if e.ObjectType() != objectType {
		return "", Errorf(EINVALID, "event %q does not match object_type %q: use a %s_request_* event", s, objectType, objectType)
	}
	return e, nil
}

func joinEvents() string {
	s := make([]string, len(EventTypes))
	for i, e := range EventTypes {
		s[i] = string(e)
	}
	return strings.Join(s, ", ")
}

// ParseObjectType validates an object_type value.
func ParseObjectType(s string) (ObjectType, error) {
	if s == "" {
		return "", Errorf(EINVALID, "object_type is required")
	}
	t := ObjectType(s)
	if !t.Valid() {
		return "", Errorf(EINVALID, "object_type %q is not valid; use deployment or pipeline", s)
	}
	return t, nil
}

// NormalizeURL validates a callback URL and returns its normal form: an absolute http or
// https URL, lowercase scheme and host, no default port, no fragment, a path of at least "/",
// and percent-encoding normalised the way HTTP clients and signature verifiers rebuild it
// (unreserved characters decoded, hex digits upper case). Storing the normal form makes the
// signed @target-uri equal to what receivers reconstruct.
func NormalizeURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", Errorf(EINVALID, "url is required")
	}
	if len(raw) > MaxURLLength {
		return "", Errorf(EINVALID, "url must be at most %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", Errorf(EINVALID, "url %q is not a valid URL", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", Errorf(EINVALID, "url must be an absolute http:// or https:// URL, got %q", raw)
	}
	if u.Opaque != "" || u.Host == "" {
		return "", Errorf(EINVALID, "url must be an absolute http:// or https:// URL with a host, got %q", raw)
	}
	if u.User != nil {
		return "", Errorf(EINVALID, "url must not contain credentials; send them in a protected header instead")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", Errorf(EINVALID, "url must have a host, got %q", raw)
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", Errorf(EINVALID, "url has an invalid port %q", port)
		}
		port = strconv.Itoa(n)
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		}
	}
	host = strings.Replace(host, "%", "%25", 1) // an IPv6 zone ("fe80::1%eth0") is escaped in URLs
	hostport := host
	if strings.Contains(host, ":") { // IPv6 literal
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	path := normalizeEscapes(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + hostport + path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + normalizeEscapes(u.RawQuery)
	}
	return out, nil
}

// normalizeEscapes decodes percent-escapes of unreserved characters and upper-cases the hex
// digits of the others (RFC 3986 §6.2.2), and escapes bytes that may not appear raw.
func normalizeEscapes(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(hex[v>>4])
				b.WriteByte(hex[v&15])
			}
			i += 2
			continue
		}
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~'
}

// reservedHeaders are set by the delivery engine; a webhook may not override them because
// they are signed or describe the body.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "content-digest": true,
	"date": true, "signature": true, "signature-input": true, "transfer-encoding": true,
	"connection": true, "user-agent": true, "te": true, "trailer": true, "upgrade": true,
	"keep-alive": true, "proxy-connection": true, "expect": true,
}

// ValidateHeaderInputs checks the headers of a create or update call. keep reports whether
// a protected header with no value may keep a stored secret (true for updates whose stored
// webhook has a protected header with that key).
func ValidateHeaderInputs(in []HeaderInput, keep func(key string) bool) error {
	if len(in) > MaxHeaders {
		return Errorf(EINVALID, "headers: at most %d headers are allowed, got %d", MaxHeaders, len(in))
	}
	seen := map[string]bool{}
	for i, h := range in {
		if h.Key == "" {
			return Errorf(EINVALID, "headers[%d]: key is required", i)
		}
		if !validHeaderKey(h.Key) {
			return Errorf(EINVALID, "headers[%d]: %q is not a valid HTTP header name", i, h.Key)
		}
		lk := strings.ToLower(h.Key)
		if reservedHeaders[lk] {
			return Errorf(EINVALID, "headers[%d]: %q is set by ubihooks and cannot be configured", i, h.Key)
		}
		if seen[lk] {
			return Errorf(EINVALID, "headers[%d]: %q is listed twice", i, h.Key)
		}
		seen[lk] = true
		if h.Protected == nil {
			return Errorf(EINVALID, "headers[%d] (%s): protected is required (true or false)", i, h.Key)
		}
		if h.Value == nil || *h.Value == "" {
			if *h.Protected && keep != nil && keep(h.Key) {
				continue
			}
			if *h.Protected && keep != nil {
				return Errorf(EINVALID, "headers[%d] (%s): a protected header without a value keeps its stored secret, but this webhook has no protected header %q", i, h.Key, h.Key)
			}
			return Errorf(EINVALID, "headers[%d] (%s): value is required", i, h.Key)
		}
		if len(*h.Value) > MaxHeaderValueLength {
			return Errorf(EINVALID, "headers[%d] (%s): value must be at most %d bytes", i, h.Key, MaxHeaderValueLength)
		}
		for _, c := range []byte(*h.Value) {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return Errorf(EINVALID, "headers[%d] (%s): value must not contain control characters or line breaks", i, h.Key)
			}
		}
	}
	return nil
}

func validHeaderKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// headerRecord is how stores persist headers: protected values only as ciphertext.
type headerRecord struct {
	K string `json:"k"`
	V string `json:"v,omitempty"`
	P bool   `json:"p,omitempty"`
	S []byte `json:"s,omitempty"`
}

// MarshalHeaders encodes headers for storage. A protected header's plain Value is never
// written, even if a caller forgot to clear it.
func MarshalHeaders(hs []Header) ([]byte, error) {
	recs := make([]headerRecord, len(hs))
	for i, h := range hs {
		recs[i] = headerRecord{K: h.Key, P: h.Protected}
		if h.Protected {
			if len(h.Sealed) == 0 {
				return nil, fmt.Errorf("ubihooks: protected header %q is not sealed", h.Key)
			}
			recs[i].S = h.Sealed
		} else {
			recs[i].V = h.Value
		}
	}
	return json.Marshal(recs)
}

// UnmarshalHeaders decodes headers written by MarshalHeaders.
func UnmarshalHeaders(b []byte) ([]Header, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var recs []headerRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("ubihooks: decode headers: %w", err)
	}
	hs := make([]Header, len(recs))
	for i, r := range recs {
		hs[i] = Header{Key: r.K, Value: r.V, Protected: r.P, Sealed: r.S}
	}
	return hs, nil
}

// SortedLabelKeys returns the keys of m in order, for deterministic output.
func SortedLabelKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
