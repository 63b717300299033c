package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Verifier checks signatures made by Signer (or by any RFC 9421 Ed25519
// signer using the same profile). Keys are looked up by exact keyid. It is
// safe for concurrent use if its fields (and Keys) are not modified.
type Verifier struct {
	// Keys maps keyid to public key; used when KeyFunc is nil.
	Keys map[string]ed25519.PublicKey
	// KeyFunc, if set, resolves a keyid (e.g. from a database) and takes
	// precedence over Keys. Its error is wrapped with ErrUnknownKey.
	KeyFunc func(keyID string) (ed25519.PublicKey, error)
	// MaxAge bounds how old created may be; 0 means 24h (the Python default).
	MaxAge time.Duration
	// MaxSkew is how far in the future created may be; 0 means 5s. Use a
	// negative value for zero tolerance.
	MaxSkew time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// RequiredComponents must all be covered; nil means DefaultComponents.
	// Use an empty non-nil slice to require nothing (not recommended).
	RequiredComponents []string
}

// Result describes a verified signature.
type Result struct {
	Label      string    // dictionary key, e.g. "pyhms"
	KeyID      string    // the keyid parameter whose key verified it
	Created    time.Time // the created parameter
	Components []string  // covered components, in signed order
}

// Verify checks the single signature on req, whose body the caller has
// already read into body (limit its size first). It accepts exactly one
// signature label, present in both Signature-Input and Signature. If
// Content-Digest is present or covered it must list only sha-256 and/or
// sha-512 members, all matching body. Covered components may not have
// parameters. For server requests (req.RequestURI set) the target URI is
// rebuilt as http(s)://Host + RequestURI, so a receiver behind a proxy that
// changes scheme or Host must restore them on req before calling Verify.
// The "@signature-params" line is rebuilt by canonically re-serializing the
// received parameters in their received order, as the Python verifier does.
// Errors wrap the package's sentinel errors.
func (v *Verifier) Verify(req *http.Request, body []byte) (*Result, error) {
	inputs, err := parseField(req.Header, "Signature-Input")
	if err != nil {
		return nil, err
	}
	sigs, err := parseField(req.Header, "Signature")
	if err != nil {
		return nil, err
	}
	if len(inputs) == 0 && len(sigs) == 0 {
		return nil, ErrNoSignature
	}
	if len(inputs) != 1 || len(sigs) != 1 {
		return nil, fmt.Errorf("%w: want exactly one signature, got %d Signature-Input and %d Signature members", ErrMalformed, len(inputs), len(sigs))
	}
	in, sm := inputs[0], sigs[0]
	if in.key != sm.key {
		return nil, fmt.Errorf("%w: Signature-Input label %q does not match Signature label %q", ErrMalformed, in.key, sm.key)
	}
	sig, ok := sm.item.value.([]byte)
	if !ok || sm.isList {
		return nil, fmt.Errorf("%w: Signature member %q is not a byte sequence", ErrMalformed, sm.key)
	}
	if !in.isList {
		return nil, fmt.Errorf("%w: Signature-Input member %q is not an inner list", ErrMalformed, in.key)
	}
	res := &Result{Label: in.key}
	for _, it := range in.list {
		name, ok := it.value.(string)
		if !ok {
			return nil, fmt.Errorf("%w: component identifier is not a string", ErrMalformed)
		}
		if len(it.params) > 0 {
			return nil, fmt.Errorf("%w: component parameters are not supported (%q)", ErrMalformed, name)
		}
		res.Components = append(res.Components, name)
	}
	required := v.RequiredComponents
	if required == nil {
		required = DefaultComponents()
	}
	for _, r := range required {
		if !slices.Contains(res.Components, r) {
			return nil, fmt.Errorf("%w: %q is not covered by the signature", ErrMissingComponent, r)
		}
	}

	var created, expires *int64
	var alg *string
	for _, p := range in.item.params {
		var ok bool
		switch p.key {
		case "created", "expires":
			var n int64
			n, ok = p.value.(int64)
			if p.key == "created" {
				created = &n
			} else {
				expires = &n
			}
		case "keyid", "alg", "nonce", "tag":
			var s string
			s, ok = p.value.(string)
			if p.key == "keyid" {
				res.KeyID = s
			} else if p.key == "alg" {
				alg = &s
			}
		default:
			return nil, fmt.Errorf("%w: unsupported signature parameter %q", ErrMalformed, p.key)
		}
		if !ok {
			return nil, fmt.Errorf("%w: signature parameter %q has the wrong type", ErrMalformed, p.key)
		}
	}
	if created == nil || res.KeyID == "" {
		return nil, fmt.Errorf("%w: signature parameters created and keyid are required", ErrMalformed)
	}
	if alg != nil && *alg != "ed25519" {
		return nil, fmt.Errorf("%w: alg %q (only ed25519)", ErrAlgorithm, *alg)
	}

	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	t := now()
	maxAge, maxSkew := v.MaxAge, v.MaxSkew
	if maxAge <= 0 {
		maxAge = 24 * time.Hour
	}
	if maxSkew == 0 {
		maxSkew = 5 * time.Second
	} else if maxSkew < 0 {
		maxSkew = 0
	}
	res.Created = time.Unix(*created, 0).UTC()
	if res.Created.After(t.Add(maxSkew)) {
		return nil, fmt.Errorf("%w: created %d is after now %d", ErrFuture, *created, t.Unix())
	}
	if t.Sub(res.Created) > maxAge {
		return nil, fmt.Errorf("%w: created %d is older than %v", ErrExpired, *created, maxAge)
	}
	if expires != nil && t.Unix() > *expires {
		return nil, fmt.Errorf("%w: expires %d", ErrExpired, *expires)
	}

	key, err := v.key(res.KeyID)
	if err != nil {
		return nil, err
	}
	if slices.Contains(res.Components, "content-digest") || len(req.Header.Values("Content-Digest")) > 0 {
		if err := checkDigest(req.Header, body); err != nil {
			return nil, err
		}
	}
	base, err := signatureBase(requestMessage(req), res.Components, serializeInnerList(in.list, in.item.params))
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(key, []byte(base), sig) {
		return nil, fmt.Errorf("%w: ed25519 verification failed for keyid %q", ErrInvalidSignature, res.KeyID)
	}
	return res, nil
}

func (v *Verifier) key(id string) (ed25519.PublicKey, error) {
	var key ed25519.PublicKey
	if v.KeyFunc != nil {
		k, err := v.KeyFunc(id)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrUnknownKey, id, err)
		}
		key = k
	} else {
		k, ok := v.Keys[id]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
		}
		key = k
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key for %q has %d bytes", ErrInvalidKey, id, len(key))
	}
	return key, nil
}

// parseField parses all lines of a dictionary-valued header as one field.
func parseField(h http.Header, name string) ([]member, error) {
	ms, err := parseDictionary(strings.Join(h.Values(name), ", "))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	return ms, nil
}

// checkDigest enforces the Python verifier's rule: at least one member, every
// member sha-256 or sha-512, every one matching body.
func checkDigest(h http.Header, body []byte) error {
	if len(h.Values("Content-Digest")) == 0 {
		return fmt.Errorf("%w: content-digest is covered but absent", ErrMissingComponent)
	}
	members, err := parseField(h, "Content-Digest")
	if err != nil {
		return err
	}
	if len(members) == 0 {
		return fmt.Errorf("%w: no digest in Content-Digest", ErrDigestMismatch)
	}
	for _, m := range members {
		var want []byte
		switch m.key {
		case "sha-256":
			s := sha256.Sum256(body)
			want = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			want = s[:]
		default:
			return fmt.Errorf("%w: content-digest algorithm %q (only sha-256, sha-512)", ErrAlgorithm, m.key)
		}
		got, ok := m.item.value.([]byte)
		if !ok || m.isList {
			return fmt.Errorf("%w: Content-Digest member %q is not a byte sequence", ErrMalformed, m.key)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%w: %s of the body differs", ErrDigestMismatch, m.key)
		}
	}
	return nil
}

// requestMessage is the Message view of req. Server requests (RequestURI set)
// get an absolute URL rebuilt from the connection's scheme and Host; client
// requests use req.URL. A Content-Length known only as req.ContentLength is
// added to a copy of the header so it can be covered.
func requestMessage(req *http.Request) *Message {
	m := &Message{Method: req.Method, URL: req.URL, Authority: req.Host, Header: req.Header}
	if m.Method == "" {
		m.Method = http.MethodGet
	}
	if req.RequestURI != "" && req.URL != nil {
		scheme := "http"
		if req.TLS != nil {
			scheme = "https"
		}
		m.URL = &url.URL{Scheme: scheme, Host: req.Host, Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	}
	if req.ContentLength > 0 && m.Header.Get("Content-Length") == "" {
		m.Header = m.Header.Clone()
		if m.Header == nil {
			m.Header = http.Header{}
		}
		m.Header.Set("Content-Length", fmt.Sprint(req.ContentLength))
	}
	return m
}
