package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ubihooks/ubihooks"
)

// maxDrain bounds how much of a response body beyond ubihooks.MaxAttemptBody is read and
// discarded so that the keep-alive connection can be reused; a longer body is abandoned
// and its connection closed.
const maxDrain = 64 << 10

// maxRetryAfter bounds a parsed Retry-After, before any policy cap, to keep the arithmetic
// safe from absurd values.
const maxRetryAfter = 365 * 24 * time.Hour

// Result is the outcome of one HTTP attempt.
type Result struct {
	StatusCode int    // 0 when no response arrived
	ErrorClass string // "" on success, else one of the ubihooks.Class* constants
	Error      string // user-facing, actionable; never an internal address or a secret
	Body       string // at most ubihooks.MaxAttemptBody bytes of valid UTF-8
	// RetryAfter is the receiver's Retry-After of a 429 or 503 answer, relative to the
	// classification time; 0 when absent, invalid or in the past.
	RetryAfter time.Duration
	// Duration is the attempt's duration; Classify leaves it zero for the caller to set.
	Duration time.Duration
}

// OK reports whether the attempt succeeded (a 2xx or 3xx answer).
func (r Result) OK() bool { return r.ErrorClass == "" }

// Messages of the error classes. Only these (and the formatted variants built from
// status codes, host names and durations) reach users.
const (
	msgTimeout        = "timed out waiting for the receiver's response"
	msgConnectTimeout = "timed out connecting to the receiver"
	msgRefused        = "the URL resolves to an address that is not allowed (private, loopback, link-local or metadata); an operator can allow networks with --allow-networks"
	msgConnRefused    = "connection refused by the receiver (is it listening on that port?)"
	msgConnReset      = "the receiver reset the connection"
	msgConnClosed     = "the receiver closed the connection without answering"
	msgUnreachable    = "the receiver's network or host is unreachable"
	msgConnect        = "could not connect to the receiver"
	msgCanceled       = "the attempt was canceled before the receiver answered"
	msgOther          = "the request to the receiver failed"
	msgTLS            = "the TLS handshake with the receiver failed"
)

// Classify turns the outcome of client.Do into a Result, classifying failures by error type
// (never by message text). A 2xx or 3xx answer is a success (redirects are not followed);
// any other status is ClassHTTPStatus. For 429 and 503 answers the Retry-After header
// (delta-seconds or an HTTP-date, relative to now) fills RetryAfter.
//
// When resp is used (err is nil), Classify reads its body with ReadBody, which also closes
// it: do not read resp.Body afterwards. When err is not nil resp is ignored, as http.Client
// documents. Duration is left for the caller to set.
func Classify(resp *http.Response, err error, now time.Time) Result {
	return ClassifyRedacted(resp, err, now, nil)
}

// ClassifyRedacted is Classify hiding the values of r in the result's Body and Error: in
// the body before it is cut to ubihooks.MaxAttemptBody, so that a value across the cut is
// hidden whole, and the start of a value left at the end of the cut body as well.
func ClassifyRedacted(resp *http.Response, err error, now time.Time, r *Redactor) Result {
	res := classify(resp, err, now, r)
	res.Error = r.Redact(res.Error)
	return res
}

func classify(resp *http.Response, err error, now time.Time, r *Redactor) Result {
	if err != nil {
		class, msg := classifyError(err)
		return Result{ErrorClass: class, Error: msg}
	}
	if resp == nil {
		return Result{ErrorClass: ubihooks.ClassOther, Error: msgOther}
	}
	res := Result{StatusCode: resp.StatusCode, Body: readBody(resp, r)}
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return res
	}
	res.ErrorClass = ubihooks.ClassHTTPStatus
	if text := http.StatusText(resp.StatusCode); text != "" {
		res.Error = fmt.Sprintf("receiver answered %d %s", resp.StatusCode, text)
	} else {
		res.Error = fmt.Sprintf("receiver answered status %d", resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
		if res.RetryAfter > 0 {
			res.Error += fmt.Sprintf(" (Retry-After %s)", res.RetryAfter)
		}
	}
	return res
}

// WithTimeout returns r with a generic timeout message replaced by one naming the webhook's
// timeout, e.g. "no response within the webhook's timeout of 10s". Other results are
// returned unchanged.
func (r Result) WithTimeout(timeout time.Duration) Result {
	if r.ErrorClass == ubihooks.ClassTimeout && r.Error == msgTimeout && timeout > 0 {
		r.Error = fmt.Sprintf("no response within the webhook's timeout of %s", timeout)
	}
	return r
}

func classifyError(err error) (class, msg string) {
	// Policy first: a refused dial is also a *net.OpError with Op "dial".
	if errors.Is(err, ErrRefusedByPolicy) {
		return ubihooks.ClassRefusedByPolicy, msgRefused
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok && !errors.Is(err, context.DeadlineExceeded) {
		return ubihooks.ClassDNS, dnsMessage(dnsErr)
	}
	if isTimeout(err) {
		if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
			return ubihooks.ClassTimeout, msgConnectTimeout
		}
		return ubihooks.ClassTimeout, msgTimeout
	}
	if errors.Is(err, context.Canceled) {
		return ubihooks.ClassOther, msgCanceled
	}
	if msg, ok := tlsMessage(err); ok {
		return ubihooks.ClassTLS, msg
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ubihooks.ClassConnect, msgConnRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return ubihooks.ClassConnect, msgConnReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ubihooks.ClassConnect, msgUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ubihooks.ClassConnect, msgConnClosed
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return ubihooks.ClassConnect, msgConnect
	}
	return ubihooks.ClassOther, msgOther
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func dnsMessage(e *net.DNSError) string {
	// e.Name is the host from the webhook's URL; e.Server (the resolver) is internal.
	switch {
	case e.IsNotFound:
		return fmt.Sprintf("could not resolve host %s", e.Name)
	case e.IsTimeout:
		return fmt.Sprintf("could not resolve host %s: the DNS lookup timed out", e.Name)
	default:
		return fmt.Sprintf("could not resolve host %s: the DNS lookup failed", e.Name)
	}
}

// tlsMessage describes TLS failures: certificate verification errors and the handshake
// and record errors that crypto/tls exposes as types.
func tlsMessage(err error) (string, bool) {
	if e, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Sprintf("the receiver's TLS certificate is not valid for host %s", e.Host), true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return "the receiver's TLS certificate is not signed by a trusted certificate authority", true
	}
	if e, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		if e.Reason == x509.Expired {
			return "the receiver's TLS certificate has expired or is not yet valid", true
		}
		return "the receiver's TLS certificate is not valid", true
	}
	if _, ok := errors.AsType[x509.SystemRootsError](err); ok {
		return "the receiver's TLS certificate could not be verified: no trusted certificate authorities are configured", true
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return "the receiver's TLS certificate could not be verified", true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok || errors.Is(err, http.ErrSchemeMismatch) {
		return "the receiver did not answer with TLS (does the URL need http:// instead of https://?)", true
	}
	if e, ok := errors.AsType[tls.AlertError](err); ok {
		return fmt.Sprintf("%s: the receiver sent alert %q", msgTLS, strings.TrimPrefix(e.Error(), "tls: ")), true
	}
	if _, ok := errors.AsType[*tls.ECHRejectionError](err); ok {
		return msgTLS + ": the receiver rejected encrypted client hello", true
	}
	return "", false
}

// parseRetryAfter parses a Retry-After value, delta-seconds or an HTTP-date, into a delay
// from now; 0 when absent, invalid or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return maxRetryAfter
			}
			return 0
		}
		if secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// ReadBody reads at most ubihooks.MaxAttemptBody bytes of resp's body and returns them as
// valid UTF-8: a multi-byte character cut by the limit is dropped, invalid bytes and NULs
// become U+FFFD, and the result never exceeds the limit. It then discards up to 64 KiB
// more (so a keep-alive connection can be reused) and closes the body. A read error ends
// the body early; ReadBody never fails. A nil resp or body yields "".
func ReadBody(resp *http.Response) string {
	return readBody(resp, nil)
}

// readBody is ReadBody with the values of r hidden before the body is cut. It reads as
// much beyond the limit as the longest spelling of a value of r, so that a value that
// begins before the cut is read whole.
func readBody(resp *http.Response, r *Redactor) string {
	if resp == nil || resp.Body == nil {
		return ""
	}
	defer resp.Body.Close()
	if r != nil && len(r.forms) == 0 {
		r = nil
	}
	size := ubihooks.MaxAttemptBody
	if r != nil {
		size += r.margin
	}
	if resp.Body == http.NoBody { // what the client gives for an empty answer (204, Content-Length: 0)
		return ""
	}
	// A body of a known length below the limit (most answers are a few bytes) is read into
	// a buffer of its size: the client's body cannot be longer than announced.
	limit := size
	if cl := resp.ContentLength; cl > 0 && cl < int64(size) {
		limit = int(cl)
	}
	buf := make([]byte, limit+1)
	n, err := io.ReadFull(resp.Body, buf[:limit])
	truncated := false
	if err == nil { // the limit (or the announced length) was reached: is there more?
		m, _ := io.ReadFull(resp.Body, buf[n:n+1])
		truncated = m > 0
		if truncated {
			_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		}
	}
	if r == nil {
		return cleanUTF8(buf[:n], truncated, ubihooks.MaxAttemptBody)
	}
	return r.excerpt(cleanUTF8(buf[:n], truncated, 3*n), ubihooks.MaxAttemptBody, truncated)
}

// cleanUTF8 returns b as valid UTF-8 of at most limit bytes. A trailing partial character
// of a truncated body is dropped; other invalid bytes and NULs become U+FFFD (which
// databases such as PostgreSQL refuse in text).
func cleanUTF8(b []byte, truncated bool, limit int) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 && len(b) <= limit {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(min(len(b), limit))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 && truncated && !utf8.FullRune(b) {
			break // a character cut by the limit
		}
		if r == utf8.RuneError && size == 1 || r == 0 {
			r = utf8.RuneError
		}
		if sb.Len()+utf8.RuneLen(r) > limit {
			break
		}
		sb.WriteRune(r)
		b = b[size:]
	}
	return sb.String()
}
