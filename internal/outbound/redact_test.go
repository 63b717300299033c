package outbound

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ubihooks/ubihooks"
)

func TestRedactForms(t *testing.T) {
	t.Parallel()
	const v = `a<b&c>d"e/f\g h?+é`
	b := []byte(v)
	tests := []struct{ name, in string }{
		{"as is", v},
		{"JSON, HTML-escaped", `a\u003cb\u0026c\u003ed\"e/f\\g h?+é`},
		{"JSON, upper-case hex", `a\u003Cb\u0026c\u003Ed\"e/f\\g h?+\u00E9`},
		{"JSON, escaped slash", `a<b&c>d\"e\/f\\g h?+é`},
		{"base64", base64.StdEncoding.EncodeToString(b)},
		{"base64 without padding", base64.RawStdEncoding.EncodeToString(b)},
		{"base64 URL", base64.URLEncoding.EncodeToString(b)},
		{"base64 URL without padding", base64.RawURLEncoding.EncodeToString(b)},
		{"percent, query", "a%3Cb%26c%3Ed%22e%2Ff%5Cg+h%3F%2B%C3%A9"},
		{"percent, path, lower-case", "a%3cb%26c%3ed%22e%2ff%5cg%20h%3f+%c3%a9"},
	}
	r := NewRedactor(v, "")
	for _, tt := range tests {
		if got, want := r.Redact("x "+tt.in+" y"), "x [redacted] y"; got != want {
			t.Errorf("%s: Redact(%q) = %q, want %q", tt.name, "x "+tt.in+" y", got, want)
		}
	}
	if got := r.Redact("a<b&c nothing"); got != "a<b&c nothing" {
		t.Errorf("Redact of a mere start of the value = %q, want it unchanged", got)
	}
	var nilR *Redactor
	if got := nilR.Redact(v); got != v {
		t.Errorf("nil Redactor: Redact = %q", got)
	}
}

func TestReadBodyRedacted(t *testing.T) {
	t.Parallel()
	const limit = ubihooks.MaxAttemptBody
	const v = "s3cr3t-value-0123456789"
	dots := func(n int) string { return strings.Repeat(".", n) }
	tests := []struct{ name, body, want string }{
		{"short", "key " + v + " ok", "key [redacted] ok"},
		{"value across the cut", dots(limit-5) + v + " tail", dots(limit-10) + "[redacted]"},
		{"encoded value across the cut", dots(limit-5) + base64.StdEncoding.EncodeToString([]byte(v)), dots(limit-10) + "[redacted]"},
		{"start of a value at the cut", dots(limit-3) + v[:6] + " not the value", dots(limit-10) + "[redacted]"},
		{"start of a value at the end of the read", strings.Repeat(v+" ", 2000), ""}, // want set below
		{"value ending at the limit", dots(limit-len(v)) + v, dots(limit-len(v)) + "[redacted]"},
		{"start of a value at the end of a whole body", dots(10) + v[:6], dots(10) + v[:6]},
		{"no value", dots(limit + 10), dots(limit)},
	}
	r := NewRedactor(v)
	// The values hidden shorten the text: the read (limit+margin bytes) ends inside a
	// value, whose start is hidden too.
	if read := limit + r.margin; read%(len(v)+1) == 0 || read%(len(v)+1) >= len(v) {
		t.Fatalf("the read of %d bytes does not end inside a value", read)
	}
	tests[4].want = strings.Repeat("[redacted] ", (limit+r.margin)/(len(v)+1)) + "[redacted]"
	for _, tt := range tests {
		resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(tt.body))}
		got := ClassifyRedacted(resp, nil, time.Now(), r).Body
		if got != tt.want {
			t.Errorf("%s: Body = %d bytes %q, want %d bytes %q", tt.name, len(got), head(got), len(tt.want), head(tt.want))
		}
		if len(got) > limit {
			t.Errorf("%s: Body of %d bytes, want at most %d", tt.name, len(got), limit)
		}
	}
}

func TestClassifyRedactedError(t *testing.T) {
	t.Parallel()
	const v = "secret.example"
	err := &net.DNSError{Err: "no such host", Name: v, IsNotFound: true}
	res := ClassifyRedacted(nil, &url.Error{Op: "Post", URL: "http://" + v, Err: err}, time.Now(), NewRedactor(v))
	if strings.Contains(res.Error, v) || !strings.Contains(res.Error, "[redacted]") {
		t.Errorf("Error = %q, want the value redacted", res.Error)
	}
}

// FuzzRedactorExcerpt: an excerpt is valid UTF-8 within its limit and never holds the
// value, whatever the text around it.
func FuzzRedactorExcerpt(f *testing.F) {
	f.Add("key s3cr3t ok", "s3cr3t", uint8(8), false)
	f.Add("....s3cr3t tail", "s3cr3t", uint8(7), true)
	f.Add("a%3Cb czNjcjN0 a\\u003cb", "a<b", uint8(20), false)
	f.Add("%25%%25", "%%", uint8(5), true)
	f.Add("ééé€s3é€", "é€s", uint8(3), true)
	f.Fuzz(func(t *testing.T, body, value string, limit uint8, truncated bool) {
		r := NewRedactor(value)
		got := r.excerpt(cleanUTF8([]byte(body), false, 3*len(body)), int(limit)+len(Marker), truncated)
		if len(got) > int(limit)+len(Marker) || !utf8.ValidString(got) {
			t.Fatalf("excerpt %q: %d bytes (limit %d), valid UTF-8 %v", got, len(got), int(limit)+len(Marker), utf8.ValidString(got))
		}
		// A value that shares no byte with Marker can only be in the excerpt's plain text.
		v := cleanUTF8([]byte(value), false, 3*len(value))
		if v != "" && !strings.ContainsAny(v, Marker) && strings.Contains(got, v) {
			t.Fatalf("excerpt %q of %q holds the value %q", got, body, v)
		}
	})
}

// TestRedactorBudget: a body made to match a long value again and again at every position
// is hidden rather than matched at length (which would take seconds of CPU per attempt).
func TestRedactorBudget(t *testing.T) {
	t.Parallel()
	v := strings.Repeat("a", 8191) + "b"
	resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(strings.Repeat("a", 100000)))}
	if got := ClassifyRedacted(resp, nil, time.Now(), NewRedactor(v)).Body; got != Marker {
		t.Errorf("Body = %d bytes %q, want %q", len(got), head(got), Marker)
	}
	// Spent in the middle of an excerpt: what may start the value is hidden with the rest.
	r := NewRedactor("0123456789")
	if got, want := r.spent(strings.Repeat("x", 100)+"01234", 0, 200), strings.Repeat("x", 100+5-r.margin)+Marker; got != want {
		t.Errorf("spent = %q, want %q", got, want)
	}
}
