package ubihooks

import (
	"encoding/json"
	"fmt"
	"strings"
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
