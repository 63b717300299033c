package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var testNow = time.Unix(1705392742, 0)

func seedKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestRoundTripServer signs real client requests and verifies them in a real
// server handler (the server-side @target-uri path).
func TestRoundTripServer(t *testing.T) {
	t.Parallel()
	key := seedKey(1)
	v := &Verifier{Keys: map[string]ed25519.PublicKey{KeyID(pubOf(key)): pubOf(key)}}
	type seen struct {
		res       *Result
		err       error
		clen      int64
		chunked   bool
		authority string
	}
	got := make(chan seen, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := v.Verify(r, body)
		got <- seen{res, err, r.ContentLength, len(r.TransferEncoding) > 0, r.Host}
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	tls := httptest.NewTLSServer(handler)
	defer tls.Close()

	for _, tc := range []struct {
		name, url, host, method, body string
		tls                           bool
	}{
		{name: "basic", url: "/hook", body: `{"a":1}`},
		{name: "query", url: "/hook?a=1&b=%20x&c=%7E", body: "x"},
		{name: "no path", url: "", body: "x"},
		{name: "escaped path", url: "/a%2Fb/c", body: "x"},
		{name: "empty body", url: "/hook"},
		{name: "put", url: "/hook", method: http.MethodPut, body: "y"},
		{name: "host override", url: "/hook", host: "Hooks.Example.com:9000", body: "x"},
		{name: "tls", url: "/hook?q=1", body: "secure", tls: true},
	} {
		srv := plain
		if tc.tls {
			srv = tls
		}
		method := tc.method
		if method == "" {
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, srv.URL+tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		if err := (&Signer{Key: key}).Sign(req, []byte(tc.body)); err != nil {
			t.Fatalf("%s: Sign: %v", tc.name, err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		s := <-got
		if s.err != nil {
			t.Errorf("%s: Verify: %v", tc.name, s.err)
			continue
		}
		if s.clen != int64(len(tc.body)) || s.chunked {
			t.Errorf("%s: server saw ContentLength %d chunked=%v, want %d unchunked", tc.name, s.clen, s.chunked, len(tc.body))
		}
		if tc.host != "" && s.authority != tc.host {
			t.Errorf("%s: server Host = %q, want %q", tc.name, s.authority, tc.host)
		}
		if s.res.KeyID != KeyID(pubOf(key)) || s.res.Label != DefaultLabel {
			t.Errorf("%s: Result = %+v", tc.name, s.res)
		}
	}

	// A body tampered in transit is detected on the server too.
	req, _ := http.NewRequest(http.MethodPost, plain.URL+"/hook", nil)
	if err := (&Signer{Key: key}).Sign(req, []byte("original")); err != nil {
		t.Fatal(err)
	}
	setBody(req, []byte("tampered"))
	resp, err := plain.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; !errors.Is(s.err, ErrDigestMismatch) {
		t.Errorf("tampered body over the wire: err = %v, want ErrDigestMismatch", s.err)
	}
}

const testURL = "http://hooks.example.com:8443/hook?x=1"

// signed returns a request signed by Signer{Key: key} at time at.
func signed(t *testing.T, key ed25519.PrivateKey, keyID string, at time.Time, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, testURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{Key: key, KeyID: keyID, Now: func() time.Time { return at }}
	if err := s.Sign(req, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return req
}

// custom returns a request with the given headers, signed with arbitrary params.
func custom(t *testing.T, hdr map[string]string, p SignatureParams) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, testURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	in, sig, err := SignMessage(seedKey(1), DefaultLabel, requestMessage(req), p)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Signature-Input", in)
	req.Header.Set("Signature", sig)
	return req
}

// rawSign re-signs req with a hand-written @signature-params value.
func rawSign(t *testing.T, req *http.Request, key ed25519.PrivateKey, sigParams string) *http.Request {
	t.Helper()
	ms, err := parseDictionary("s=" + sigParams)
	if err != nil {
		t.Fatal(err)
	}
	var comps []string
	for _, it := range ms[0].list {
		comps = append(comps, it.value.(string))
	}
	base, err := signatureBase(requestMessage(req), comps, sigParams)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Signature-Input", DefaultLabel+"="+sigParams)
	req.Header.Set("Signature", DefaultLabel+"=:"+base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(base)))+":")
	return req
}

func sha512Digest(body string) string {
	s := sha512.Sum512([]byte(body))
	return "sha-512=:" + base64.StdEncoding.EncodeToString(s[:]) + ":"
}

func TestVerifyCases(t *testing.T) {
	t.Parallel()
	const body = `{"hello": "world"}`
	key, other := seedKey(1), seedKey(2)
	kid := KeyID(pubOf(key))
	params := func(comps ...string) SignatureParams {
		if comps == nil {
			comps = DefaultComponents()
		}
		return SignatureParams{Components: comps, Created: testNow.Unix(), KeyID: kid, Alg: "ed25519"}
	}
	hdr := func(digest string) map[string]string {
		return map[string]string{"Date": goldenDate, "Content-Digest": digest}
	}
	edit := func(req *http.Request, name, old, new string) *http.Request {
		req.Header.Set(name, strings.Replace(req.Header.Get(name), old, new, 1))
		return req
	}
	ok := func() *http.Request { return signed(t, key, "", testNow, body) }

	for _, tc := range []struct {
		name   string
		req    *http.Request
		body   string // verified body; default body
		verify func(*Verifier)
		want   error // nil = accept
	}{
		{name: "valid", req: ok()},
		{name: "within skew", req: signed(t, key, "", testNow.Add(4*time.Second), body)},
		{name: "max age edge", req: signed(t, key, "", testNow.Add(-24*time.Hour), body)},
		{name: "sha-512 only", req: custom(t, hdr(sha512Digest(body)), params())},
		{name: "sha-256 and sha-512", req: custom(t, hdr(ContentDigest([]byte(body))+", "+sha512Digest(body)), params())},
		{name: "no alg", req: custom(t, hdr(ContentDigest([]byte(body))), SignatureParams{Components: DefaultComponents(), Created: testNow.Unix(), KeyID: kid})},
		{name: "nonce and expires", req: edit(custom(t, hdr(ContentDigest([]byte(body))), params()), "Signature-Input", `alg="ed25519"`, `alg="ed25519";nonce="n";expires=1705392800`), want: ErrInvalidSignature},
		{name: "nonce expires tag", req: rawSign(t, ok(), key, `("@method" "@authority" "@target-uri" "content-digest" "date");created=1705392742;keyid="`+kid+`";nonce="n";expires=1705392800;tag="t"`)},
		{name: "non-canonical whitespace", req: edit(ok(), "Signature-Input", `("@method" `, `(  "@method"   `)},
		{name: "key func", req: ok(), verify: func(v *Verifier) {
			v.Keys = nil
			v.KeyFunc = func(id string) (ed25519.PublicKey, error) { return pubOf(key), nil }
		}},

		{name: "tampered body", req: ok(), body: `{"hello": "mars"}`, want: ErrDigestMismatch},
		{name: "tampered date", req: edit(ok(), "Date", "2024", "2025"), want: ErrInvalidSignature},
		{name: "tampered created", req: edit(ok(), "Signature-Input", "created=1705392742", "created=1705392741"), want: ErrInvalidSignature},
		{name: "tampered signature", req: edit(ok(), "Signature", ":", ":AAAA"), want: ErrInvalidSignature},
		{name: "short signature", req: edit(ok(), "Signature", ":", ":AAAA"+strings.Repeat("A", 4)), want: ErrInvalidSignature},
		{name: "wrong key", req: signed(t, other, kid, testNow, body), want: ErrInvalidSignature},
		{name: "unknown keyid", req: signed(t, other, "", testNow, body), want: ErrUnknownKey},
		{name: "key func error", req: ok(), want: ErrUnknownKey, verify: func(v *Verifier) {
			v.KeyFunc = func(string) (ed25519.PublicKey, error) { return nil, errors.New("db down") }
		}},
		{name: "bad stored key", req: ok(), want: ErrInvalidKey, verify: func(v *Verifier) { v.Keys[kid] = pubOf(key)[:31] }},
		{name: "date not covered", req: custom(t, hdr(ContentDigest([]byte(body))), params("@method", "@authority", "@target-uri", "content-digest")), want: ErrMissingComponent},
		{name: "digest not covered", req: custom(t, hdr(ContentDigest([]byte(body))), params("@method", "@authority", "@target-uri", "date")), want: ErrMissingComponent},
		{name: "digest header removed", req: func() *http.Request { r := ok(); r.Header.Del("Content-Digest"); return r }(), want: ErrMissingComponent},
		{name: "expired", req: signed(t, key, "", testNow.Add(-24*time.Hour-time.Second), body), want: ErrExpired},
		{name: "custom max age", req: signed(t, key, "", testNow.Add(-time.Hour), body), want: ErrExpired, verify: func(v *Verifier) { v.MaxAge = time.Minute }},
		{name: "expires passed", req: edit(ok(), "Signature-Input", `alg="ed25519"`, `alg="ed25519";expires=1705392700`), want: ErrExpired},
		{name: "future beyond skew", req: signed(t, key, "", testNow.Add(6*time.Second), body), want: ErrFuture},
		{name: "future zero tolerance", req: signed(t, key, "", testNow.Add(time.Second), body), want: ErrFuture, verify: func(v *Verifier) { v.MaxSkew = -1 }},
		{name: "alg rsa", req: edit(ok(), "Signature-Input", `alg="ed25519"`, `alg="rsa-pss-sha512"`), want: ErrAlgorithm},
		{name: "alg token", req: edit(ok(), "Signature-Input", `alg="ed25519"`, `alg=ed25519`), want: ErrMalformed},
		{name: "digest md5", req: custom(t, hdr("md5=:AAAA:"), params()), want: ErrAlgorithm},
		{name: "digest sha-256 plus unknown", req: custom(t, hdr(ContentDigest([]byte(body))+", sha-1=:AAAA:"), params()), want: ErrAlgorithm},
		{name: "digest sha-512 mismatch", req: custom(t, hdr(sha512Digest("other")), params()), want: ErrDigestMismatch},
		{name: "digest not bytes", req: custom(t, hdr(`sha-256="abc"`), params()), want: ErrMalformed},
		{name: "digest malformed", req: custom(t, hdr(`sha-256=:abc`), params()), want: ErrMalformed},
		{name: "two signatures", req: func() *http.Request {
			r := ok()
			r.Header.Add("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), "pyhms=", "sig2=", 1))
			r.Header.Add("Signature", strings.Replace(r.Header.Get("Signature"), "pyhms=", "sig2=", 1))
			return r
		}(), want: ErrMalformed},
		{name: "duplicate label", req: func() *http.Request {
			r := ok()
			r.Header.Add("Signature-Input", r.Header.Get("Signature-Input"))
			return r
		}(), want: ErrMalformed},
		{name: "label mismatch", req: edit(ok(), "Signature", "pyhms=", "other="), want: ErrMalformed},
		{name: "no signature", req: func() *http.Request { r := ok(); r.Header.Del("Signature"); r.Header.Del("Signature-Input"); return r }(), want: ErrNoSignature},
		{name: "signature only", req: func() *http.Request { r := ok(); r.Header.Del("Signature-Input"); return r }(), want: ErrMalformed},
		{name: "input not list", req: edit(ok(), "Signature-Input", `pyhms=(`, `pyhms="x";z=(`), want: ErrMalformed},
		{name: "signature not bytes", req: edit(ok(), "Signature", "pyhms=:", `pyhms="`), want: ErrMalformed},
		{name: "trailing comma", req: edit(ok(), "Signature-Input", `alg="ed25519"`, `alg="ed25519",`), want: ErrMalformed},
		{name: "unquoted component", req: edit(ok(), "Signature-Input", `"date"`, `date`), want: ErrMalformed},
		{name: "component params", req: edit(ok(), "Signature-Input", `"date"`, `"date";sf`), want: ErrMalformed},
		{name: "uppercase component", req: edit(ok(), "Signature-Input", `"date"`, `"Date"`), want: ErrMissingComponent},
		{name: "duplicate component", req: edit(ok(), "Signature-Input", `"date")`, `"date" "date")`), want: ErrMalformed},
		{name: "missing created", req: edit(ok(), "Signature-Input", `;created=1705392742`, ``), want: ErrMalformed},
		{name: "missing keyid", req: edit(ok(), "Signature-Input", `;keyid="`+kid+`"`, ``), want: ErrMalformed},
		{name: "created string", req: edit(ok(), "Signature-Input", `created=1705392742`, `created="1705392742"`), want: ErrMalformed},
		{name: "unknown param", req: edit(ok(), "Signature-Input", `alg="ed25519"`, `alg="ed25519";foo=1`), want: ErrMalformed},
		{name: "tag param accepted then fails signature", req: edit(ok(), "Signature-Input", `alg="ed25519"`, `alg="ed25519";tag="t"`), want: ErrInvalidSignature},
	} {
		v := &Verifier{Keys: map[string]ed25519.PublicKey{kid: pubOf(key)}, Now: func() time.Time { return testNow }}
		if tc.verify != nil {
			tc.verify(v)
		}
		b := tc.body
		if b == "" {
			b = body
		}
		res, err := v.Verify(tc.req, []byte(b))
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: Verify = %v, want success", tc.name, err)
			} else if res.KeyID != kid {
				t.Errorf("%s: KeyID = %q, want %q", tc.name, res.KeyID, kid)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify err = %v, want %v", tc.name, err, tc.want)
		} else if !strings.HasPrefix(err.Error(), "httpsig: ") {
			t.Errorf("%s: error %q lacks the httpsig: prefix", tc.name, err)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	key := seedKey(1)
	v := &Verifier{Keys: map[string]ed25519.PublicKey{KeyID(pubOf(key)): pubOf(key)}, Now: func() time.Time { return testNow }}
	_, err := v.Verify(signed(t, key, "", testNow, "a"), []byte("b"))
	if got, want := fmt.Sprint(err), "httpsig: content-digest mismatch"; !strings.HasPrefix(got, want) {
		t.Errorf("err = %q, want prefix %q", got, want)
	}
	_, err = v.Verify(signed(t, key, "", testNow.Add(-48*time.Hour), "a"), []byte("a"))
	if got, want := fmt.Sprint(err), "httpsig: signature expired"; !strings.HasPrefix(got, want) {
		t.Errorf("err = %q, want prefix %q", got, want)
	}
}
