// Package httpsig signs and verifies HTTP requests with RFC 9421 HTTP Message
// Signatures (Ed25519 only) and RFC 9530 Content-Digest.
//
// It is deliberately narrow: it implements what ubihooks needs to sign
// outgoing webhook POSTs so that the Python http-message-signatures /
// requests-http-signature verifiers accept them, and to verify such requests
// in Go receivers. Only request messages are supported, component identifiers
// may not carry parameters (no ;sf, ;key, ;req, ;bs, no @query-param), and
// exactly one signature per message is accepted.
package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultLabel is the signature label used by the Python
// http-message-signatures library, which receivers may expect.
const DefaultLabel = "pyhms"

// Sentinel errors. Sign and Verify wrap them with details (the message
// starts with the sentinel's text); callers test them with errors.Is, e.g. to
// answer 400 for ErrMalformed but 401 for ErrInvalidSignature.
var (
	// ErrNoSignature: neither Signature-Input nor Signature is present.
	ErrNoSignature = errors.New("httpsig: no signature")
	// ErrMalformed: a header is not valid structured-field syntax, or uses
	// something this profile rejects (several signatures, mismatched labels,
	// unknown parameters, component parameters, unsupported components).
	ErrMalformed = errors.New("httpsig: malformed signature")
	// ErrMissingComponent: a required component is not covered, or a
	// covered header is absent from the message.
	ErrMissingComponent = errors.New("httpsig: missing component")
	// ErrDigestMismatch: Content-Digest does not match the body.
	ErrDigestMismatch = errors.New("httpsig: content-digest mismatch")
	// ErrAlgorithm: alg is not ed25519, or a Content-Digest member is not
	// sha-256 or sha-512.
	ErrAlgorithm = errors.New("httpsig: unsupported algorithm")
	// ErrExpired: created is older than MaxAge, or expires has passed.
	ErrExpired = errors.New("httpsig: signature expired")
	// ErrFuture: created is more than MaxSkew ahead of Now.
	ErrFuture = errors.New("httpsig: signature created in the future")
	// ErrUnknownKey: no public key for the keyid.
	ErrUnknownKey = errors.New("httpsig: unknown key")
	// ErrInvalidSignature: the Ed25519 check failed (tampered covered
	// component, wrong key, corrupted signature).
	ErrInvalidSignature = errors.New("httpsig: invalid signature")
	// ErrInvalidKey: a private or public key has the wrong length.
	ErrInvalidKey = errors.New("httpsig: invalid key")
)

// DefaultComponents returns (a fresh copy of) the components ubihooks covers:
// the ones the contract's Python verifier recipe needs, in the order it uses.
func DefaultComponents() []string {
	return []string{"@method", "@authority", "@target-uri", "content-digest", "date"}
}

// KeyID returns the key identifier receivers match exactly:
// "sha512:" + lowercase hex SHA-512 of the 32 raw public-key bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha512.Sum512(pub)
	return "sha512:" + hex.EncodeToString(sum[:])
}

// ContentDigest returns the RFC 9530 Content-Digest field value for body
// using sha-256 (the Python signer's default), e.g. "sha-256=:<base64>:".
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// Message is the transport-independent view of a request that a signature
// covers. It lets signature bases be computed without an *http.Request or a
// network (e.g. for test vectors).
type Message struct {
	Method string   // request method, used verbatim (not normalized)
	URL    *url.URL // absolute target URI: scheme, host[:port], path, query
	// Authority is the Host as sent (host[:port]); empty means URL.Host.
	// It is lowercased and used for @authority and as the host of
	// @target-uri, since receivers rebuild the target URI from Host.
	Authority string
	Header    http.Header // field values for non-derived components
}

// SignatureParams are the covered components and signature parameters that
// SignMessage emits, serialized in this order: created, keyid, alg.
type SignatureParams struct {
	Components []string // lowercase component names, e.g. "@method", "date"
	Created    int64    // Unix seconds
	KeyID      string   // omitted when empty
	Alg        string   // omitted when empty (RFC 9421 B.2.6 omits it)
}

func (p SignatureParams) items() ([]item, []param) {
	items := make([]item, len(p.Components))
	for i, c := range p.Components {
		items[i] = item{value: c}
	}
	params := []param{{"created", p.Created}}
	if p.KeyID != "" {
		params = append(params, param{"keyid", p.KeyID})
	}
	if p.Alg != "" {
		params = append(params, param{"alg", p.Alg})
	}
	return items, params
}

// String returns the canonical structured-field serialization used both in
// Signature-Input and on the "@signature-params" line of the signature base.
func (p SignatureParams) String() string {
	return serializeInnerList(p.items())
}

// SignatureBase returns the RFC 9421 §2.5 signature base for m and p, with
// no trailing newline. Supported components: @method, @authority, @scheme,
// @target-uri, @request-target, @path, @query and lowercase header names
// (multiple field lines are trimmed and joined with ", "; "host" falls back
// to the authority). @target-uri is scheme://authority + path (at least "/")
// + "?query" when the query is non-empty; userinfo and fragment are dropped.
// Other derived components (@status, @query-param) and component
// parameters are not supported.
func SignatureBase(m *Message, p SignatureParams) (string, error) {
	return signatureBase(m, p.Components, p.String())
}

// SignMessage signs m and returns the Signature-Input and Signature field
// values (both prefixed with "label="). It is a pure function: Ed25519 is
// deterministic, so equal inputs give byte-identical output. The output is
// re-parsed with the strict parser, so a bad label, keyid or component name
// is reported here rather than by the receiver.
func SignMessage(key ed25519.PrivateKey, label string, m *Message, p SignatureParams) (signatureInput, signature string, err error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", "", fmt.Errorf("%w: private key has %d bytes, want %d", ErrInvalidKey, len(key), ed25519.PrivateKeySize)
	}
	signatureInput = label + "=" + p.String()
	if err := checkSignatureInput(label, p); err != nil {
		return "", "", fmt.Errorf("%w: Signature-Input %q: %v", ErrMalformed, signatureInput, err)
	}
	base, err := SignatureBase(m, p)
	if err != nil {
		return "", "", err
	}
	sig := ed25519.Sign(key, []byte(base))
	return signatureInput, label + "=:" + base64.StdEncoding.EncodeToString(sig) + ":", nil
}

// checkSignatureInput reports what would make label=p (as String serializes it) fail the
// strict parser: a label that is not a structured-field key, a string (component name,
// keyid, alg) with a byte outside printable ASCII, or created outside the integer range.
// The serializer escapes quotes and backslashes, so nothing else can. It is the parser's
// verdict without a parse (signing is on the path of every delivery).
func checkSignatureInput(label string, p SignatureParams) error {
	if label == "" || !(isLCAlpha(label[0]) || label[0] == '*') {
		return fmt.Errorf("label %q is not a key", label)
	}
	for i := 1; i < len(label); i++ {
		if c := label[i]; !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			return fmt.Errorf("label %q is not a key", label)
		}
	}
	printable := func(what, v string) error {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return fmt.Errorf("%s %q has a byte outside printable ASCII", what, v)
			}
		}
		return nil
	}
	for _, c := range p.Components {
		if err := printable("component", c); err != nil {
			return err
		}
	}
	if err := printable("keyid", p.KeyID); err != nil {
		return err
	}
	if err := printable("alg", p.Alg); err != nil {
		return err
	}
	if p.Created > 999_999_999_999_999 || p.Created < -999_999_999_999_999 {
		return fmt.Errorf("created %d is out of range", p.Created)
	}
	return nil
}

// signatureBase builds the base from the covered components and the
// already-serialized "@signature-params" value.
func signatureBase(m *Message, components []string, sigParams string) (string, error) {
	var b strings.Builder
	seen := map[string]bool{}
	for _, name := range components {
		if !validComponentName(name) {
			return "", fmt.Errorf("%w: invalid component name %q", ErrMalformed, name)
		}
		if seen[name] {
			return "", fmt.Errorf("%w: duplicate component %q", ErrMalformed, name)
		}
		seen[name] = true
		v, err := componentValue(m, name)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("%w: component %q contains a line break", ErrMalformed, name)
		}
		fmt.Fprintf(&b, "%q: %s\n", name, v)
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(sigParams)
	return b.String(), nil
}

// validComponentName accepts lowercase visible ASCII without quotes or
// backslashes (so %q above is the plain "name" form).
func validComponentName(name string) bool {
	if name == "" || name == "@signature-params" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\\' || (c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func componentValue(m *Message, name string) (string, error) {
	u := m.URL
	if u == nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("httpsig: target URI must be absolute, got %v", u)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	query := ""
	if u.RawQuery != "" {
		query = "?" + u.RawQuery
	}
	authority := m.Authority
	if authority == "" {
		authority = u.Host
	}
	authority = strings.ToLower(authority)
	switch name {
	case "@method":
		return m.Method, nil
	case "@authority":
		return authority, nil
	case "@scheme":
		return strings.ToLower(u.Scheme), nil
	case "@target-uri":
		return strings.ToLower(u.Scheme) + "://" + authority + path + query, nil
	case "@request-target":
		return path + query, nil
	case "@path":
		return path, nil
	case "@query":
		return "?" + u.RawQuery, nil
	}
	if strings.HasPrefix(name, "@") {
		return "", fmt.Errorf("%w: derived component %q is not supported", ErrMalformed, name)
	}
	vals := m.Header.Values(name)
	if len(vals) == 0 && name == "host" {
		return authority, nil // Go servers move Host out of the header map
	}
	if len(vals) == 0 {
		return "", fmt.Errorf("%w: header %q is covered but absent", ErrMissingComponent, name)
	}
	for i, v := range vals {
		vals[i] = strings.Trim(v, " \t")
	}
	return strings.Join(vals, ", "), nil
}

// Signer signs outgoing requests with the ubihooks profile (see Sign). The
// zero value is not usable: Key is required. A Signer is safe for concurrent
// use if its fields are not modified.
type Signer struct {
	Key   ed25519.PrivateKey
	KeyID string           // default KeyID(Key.Public())
	Label string           // default DefaultLabel ("pyhms")
	Now   func() time.Time // default time.Now; tests fix it
}

// Sign prepares req to carry body and signs it. It sets Content-Digest
// (sha-256), Date (http.TimeFormat, from Now) unless already set,
// Signature-Input and Signature covering DefaultComponents with
// ;created=<floor(now)>;keyid="...";alg="ed25519". It replaces req.Body,
// GetBody and ContentLength so the body is sent with a Content-Length and
// never chunked, as the Python verifier requires. Existing signature headers
// are replaced. req.URL must be absolute. The authority (used by
// @authority and as the host of @target-uri) is req.Host if set, else
// req.URL.Host, i.e. the Host header Go sends. Do not change the request
// after signing.
func (s *Signer) Sign(req *http.Request, body []byte) error {
	if len(s.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: private key has %d bytes, want %d", ErrInvalidKey, len(s.Key), ed25519.PrivateKeySize)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	keyID, label := s.KeyID, s.Label
	if keyID == "" {
		keyID = KeyID(s.Key.Public().(ed25519.PublicKey))
	}
	if label == "" {
		label = DefaultLabel
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Digest", ContentDigest(body))
	if req.Header.Get("Date") == "" {
		req.Header.Set("Date", t.UTC().Format(http.TimeFormat))
	}
	setBody(req, body)
	p := SignatureParams{Components: DefaultComponents(), Created: t.Unix(), KeyID: keyID, Alg: "ed25519"}
	in, sig, err := SignMessage(s.Key, label, requestMessage(req), p)
	if err != nil {
		return err
	}
	req.Header.Set("Signature-Input", in)
	req.Header.Set("Signature", sig)
	return nil
}

// setBody makes req send exactly body with a Content-Length. An empty body
// uses http.NoBody: a non-nil Body with ContentLength 0 would be chunked.
func setBody(req *http.Request, body []byte) {
	req.ContentLength = int64(len(body))
	req.TransferEncoding = nil
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}
