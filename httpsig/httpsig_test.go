package httpsig

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Golden vector from contract.md §5 (made by Python http-message-signatures 0.4.4).
const (
	goldenSeed   = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	goldenPub    = "ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ="
	goldenKeyID  = "sha512:7b6a1405e47be084864fc74eb876beb7f9c108a49ac02647a1420e836e3620ab54dd2cf5a6a94c9c39075fa0e0fd9a74ec9a6cdd3b738a07f7d56adc80c0935d"
	goldenURL    = "http://127.0.0.1:8000/hook"
	goldenBody   = `{"event":"deployment_request_completed","request_id":"00000000-0000-0000-0000-000000000001","status":"completed"}`
	goldenDate   = "Tue, 16 Jan 2024 08:12:22 GMT"
	goldenDigest = "sha-256=:pblBz0j0mpFXAGqoTuqz/WXNmkVUm7v4LwOkIfr60Q0=:"
	goldenInput  = `pyhms=("@method" "@authority" "@target-uri" "content-digest" "date");created=1705392742;keyid="` + goldenKeyID + `";alg="ed25519"`
	goldenSig    = "pyhms=:Aq7+lC7uDdsZvzXrLmjBU6NHAWZj2KxOZQ12c/4UoxPZdsexJXnL4OkUVavDJhFmlsDEZlwaJ4GiSihn4HxVAg==:"
)

func goldenKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	seed, err := hex.DecodeString(goldenSeed)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestGoldenVectorPure(t *testing.T) {
	t.Parallel()
	key := goldenKey(t)
	pub := key.Public().(ed25519.PublicKey)
	if got := base64.StdEncoding.EncodeToString(pub); got != goldenPub {
		t.Errorf("public key = %s, want %s", got, goldenPub)
	}
	if got := KeyID(pub); got != goldenKeyID {
		t.Errorf("KeyID = %s, want %s", got, goldenKeyID)
	}
	if got := ContentDigest([]byte(goldenBody)); got != goldenDigest {
		t.Errorf("ContentDigest = %s, want %s", got, goldenDigest)
	}
	m := &Message{Method: "POST", URL: mustURL(t, goldenURL), Header: http.Header{
		"Date":           {goldenDate},
		"Content-Digest": {goldenDigest},
	}}
	in, sig, err := SignMessage(key, "pyhms", m, SignatureParams{
		Components: DefaultComponents(), Created: 1705392742, KeyID: goldenKeyID, Alg: "ed25519",
	})
	if err != nil {
		t.Fatal(err)
	}
	if in != goldenInput {
		t.Errorf("Signature-Input:\n got %s\nwant %s", in, goldenInput)
	}
	if sig != goldenSig {
		t.Errorf("Signature:\n got %s\nwant %s", sig, goldenSig)
	}
}

func TestGoldenVectorSigner(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequest(http.MethodPost, goldenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	s := &Signer{Key: goldenKey(t), Now: func() time.Time { return time.Unix(1705392742, 999e6) }} // created floors
	if err := s.Sign(req, []byte(goldenBody)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"Date": goldenDate, "Content-Digest": goldenDigest, "Signature-Input": goldenInput, "Signature": goldenSig,
	} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	if req.ContentLength != int64(len(goldenBody)) {
		t.Errorf("ContentLength = %d, want %d", req.ContentLength, len(goldenBody))
	}
	body, _ := io.ReadAll(req.Body)
	rb, _ := req.GetBody()
	again, _ := io.ReadAll(rb)
	if string(body) != goldenBody || string(again) != goldenBody {
		t.Errorf("Body = %q, GetBody = %q, want %q", body, again, goldenBody)
	}

	pub := goldenKey(t).Public().(ed25519.PublicKey)
	v := &Verifier{Keys: map[string]ed25519.PublicKey{goldenKeyID: pub}, Now: func() time.Time { return time.Unix(1705392742, 0) }}
	res, err := v.Verify(req, []byte(goldenBody))
	if err != nil {
		t.Fatalf("Verify golden: %v", err)
	}
	if res.Label != "pyhms" || res.KeyID != goldenKeyID || res.Created.Unix() != 1705392742 || len(res.Components) != 5 {
		t.Errorf("Result = %+v", res)
	}
}

// RFC 9421 Appendix B.1.4 test-key-ed25519.
const (
	rfcEd25519Pub  = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n-----END PUBLIC KEY-----\n"
	rfcEd25519Priv = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n"
	// RFC 9421 Appendix B.2 test request.
	rfcRequest = "POST /foo?param=Value&Pet=dog HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Date: Tue, 20 Apr 2021 02:07:55 GMT\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:\r\n" +
		"Content-Length: 18\r\n\r\n" +
		`{"hello": "world"}`
	b26Input = `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	b26Sig   = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
	b26Base  = `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
)

var b26Components = []string{"date", "@method", "@path", "@authority", "content-type", "content-length"}

func rfcKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	block, _ := pem.Decode([]byte(rfcEd25519Priv))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey)
}

func readRFCRequest(t testing.TB) (*http.Request, []byte) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rfcRequest)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, body
}

func TestRFC9421B26(t *testing.T) {
	t.Parallel()
	key := rfcKey(t)
	pub, err := ParsePublicKeyPEM([]byte(rfcEd25519Pub))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) {
		t.Fatal("B.1.4 public and private keys do not match")
	}
	m := &Message{Method: "POST", URL: mustURL(t, "http://example.com/foo?param=Value&Pet=dog"), Header: http.Header{
		"Date":           {"Tue, 20 Apr 2021 02:07:55 GMT"},
		"Content-Type":   {"application/json"},
		"Content-Length": {"18"},
	}}
	p := SignatureParams{Components: b26Components, Created: 1618884473, KeyID: "test-key-ed25519"}
	base, err := SignatureBase(m, p)
	if err != nil {
		t.Fatal(err)
	}
	if base != b26Base {
		t.Errorf("signature base:\n got %s\nwant %s", base, b26Base)
	}
	in, sig, err := SignMessage(key, "sig-b26", m, p)
	if err != nil {
		t.Fatal(err)
	}
	if in != b26Input || sig != b26Sig {
		t.Errorf("got\n %s\n %s\nwant\n %s\n %s", in, sig, b26Input, b26Sig)
	}

	// Verify the RFC's request as a server would receive it.
	req, body := readRFCRequest(t)
	req.Header.Set("Signature-Input", b26Input)
	req.Header.Set("Signature", b26Sig)
	v := &Verifier{
		Keys:               map[string]ed25519.PublicKey{"test-key-ed25519": pub},
		RequiredComponents: b26Components,
		Now:                func() time.Time { return time.Unix(1618884473, 0) },
	}
	res, err := v.Verify(req, body)
	if err != nil {
		t.Fatalf("Verify B.2.6: %v", err)
	}
	if res.Label != "sig-b26" || res.KeyID != "test-key-ed25519" {
		t.Errorf("Result = %+v", res)
	}
	// The default profile demands content-digest and friends, which B.2.6 lacks.
	v.RequiredComponents = nil
	if _, err := v.Verify(req, body); !errors.Is(err, ErrMissingComponent) {
		t.Errorf("Verify with default components: err = %v, want ErrMissingComponent", err)
	}
}

func TestRFC9530Digests(t *testing.T) {
	t.Parallel()
	body := []byte(`{"hello": "world"}`)
	if got, want := ContentDigest(body), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"; got != want {
		t.Errorf("ContentDigest = %s, want %s", got, want)
	}
	sum := sha512.Sum512(body)
	if got, want := "sha-512=:"+base64.StdEncoding.EncodeToString(sum[:])+":",
		"sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"; got != want {
		t.Errorf("sha-512 digest = %s, want %s", got, want)
	}
	// checkDigest accepts the RFC 9530 values.
	for _, d := range []string{
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
		"sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
	} {
		if err := checkDigest(http.Header{"Content-Digest": {d}}, body); err != nil {
			t.Errorf("checkDigest(%s) = %v, want nil", d, err)
		}
	}
}

func TestComponentValues(t *testing.T) {
	t.Parallel()
	m := &Message{Method: "PATCH", URL: mustURL(t, "HTTP://Example.COM:8080/a%20b/c?x=1&y=%41"), Header: http.Header{
		"X-Multi": {" one ", "two\t"},
		"Host":    {"ignored.example"},
	}}
	for name, want := range map[string]string{
		"@method":         "PATCH",
		"@authority":      "example.com:8080",
		"@scheme":         "http",
		"@target-uri":     "http://example.com:8080/a%20b/c?x=1&y=%41",
		"@request-target": "/a%20b/c?x=1&y=%41",
		"@path":           "/a%20b/c",
		"@query":          "?x=1&y=%41",
		"x-multi":         "one, two",
		"host":            "ignored.example",
	} {
		if got, err := componentValue(m, name); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	bare := &Message{Method: "GET", URL: mustURL(t, "https://h.example"), Authority: "Proxy.Example:444"}
	for name, want := range map[string]string{
		"@target-uri": "https://proxy.example:444/", "@path": "/", "@query": "?", "@request-target": "/",
		"@authority": "proxy.example:444", "host": "proxy.example:444",
	} {
		if got, err := componentValue(bare, name); err != nil || got != want {
			t.Errorf("bare %s = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := componentValue(bare, "@status"); !errors.Is(err, ErrMalformed) {
		t.Errorf("@status: err = %v, want ErrMalformed", err)
	}
	if _, err := componentValue(bare, "date"); !errors.Is(err, ErrMissingComponent) {
		t.Errorf("absent date: err = %v, want ErrMissingComponent", err)
	}
	if _, err := componentValue(&Message{URL: mustURL(t, "/relative")}, "@path"); err == nil {
		t.Error("relative URL: got nil error")
	}
}

func TestSignMessageRejectsBadInput(t *testing.T) {
	t.Parallel()
	m := &Message{Method: "POST", URL: mustURL(t, goldenURL), Header: http.Header{"Date": {goldenDate}}}
	ok := SignatureParams{Components: []string{"date"}, Created: 1, KeyID: "k"}
	for _, tc := range []struct {
		name  string
		key   ed25519.PrivateKey
		label string
		p     SignatureParams
		want  error
	}{
		{"short key", make(ed25519.PrivateKey, 10), "sig", ok, ErrInvalidKey},
		{"bad label", goldenKey(t), "Sig", ok, ErrMalformed},
		{"keyid control char", goldenKey(t), "sig", SignatureParams{Components: []string{"date"}, KeyID: "a\nb"}, ErrMalformed},
		{"uppercase component", goldenKey(t), "sig", SignatureParams{Components: []string{"Date"}, KeyID: "k"}, ErrMalformed},
		{"duplicate component", goldenKey(t), "sig", SignatureParams{Components: []string{"date", "date"}, KeyID: "k"}, ErrMalformed},
		{"signature-params covered", goldenKey(t), "sig", SignatureParams{Components: []string{"@signature-params"}, KeyID: "k"}, ErrMalformed},
		{"absent header", goldenKey(t), "sig", SignatureParams{Components: []string{"x-missing"}, KeyID: "k"}, ErrMissingComponent},
	} {
		if _, _, err := SignMessage(tc.key, tc.label, m, tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	m.Header.Set("X-Injected", "a\nb")
	if _, _, err := SignMessage(goldenKey(t), "sig", m, SignatureParams{Components: []string{"x-injected"}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("line break in value: err = %v, want ErrMalformed", err)
	}
	if err := (&Signer{}).Sign(&http.Request{}, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Signer without key: err = %v, want ErrInvalidKey", err)
	}
}

func TestPEM(t *testing.T) {
	t.Parallel()
	pub := goldenKey(t).Public().(ed25519.PublicKey)
	data, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("PEM = %q, want a PUBLIC KEY block", data)
	}
	got, err := ParsePublicKeyPEM(data)
	if err != nil || !got.Equal(pub) {
		t.Errorf("round trip = %x, %v; want %x", got, err, pub)
	}
	if _, err := MarshalPublicKeyPEM(pub[:5]); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("short key: err = %v, want ErrInvalidKey", err)
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for _, tc := range []struct{ name, in, want string }{
		{"private key", rfcEd25519Priv, "PRIVATE KEY"},
		{"not PEM", "hello", "no PEM block"},
		{"certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "want \"PUBLIC KEY\""},
		{"garbage DER", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "parse public key"},
		{"ecdsa", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})), "want Ed25519"},
	} {
		if _, err := ParsePublicKeyPEM([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
