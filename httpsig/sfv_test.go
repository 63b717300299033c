package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serializeDictionary is the canonical RFC 8941 §4.1.2 serialization, used to
// check that the parser and serializer agree.
func serializeDictionary(ms []member) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.key)
		switch v, isBool := m.item.value.(bool); {
		case m.isList:
			b.WriteString("=" + serializeInnerList(m.list, m.item.params))
		case isBool && v:
			serializeParams(&b, m.item.params)
		default:
			b.WriteByte('=')
			serializeBareItem(&b, m.item.value)
			serializeParams(&b, m.item.params)
		}
	}
	return b.String()
}

var sfGood = []struct{ in, canonical string }{
	{``, ``},
	{`a=1`, `a=1`},
	{goldenInput, goldenInput},
	{b26Input, b26Input},
	{`sig=:AAEC:`, `sig=:AAEC:`},
	{`a=?0, b, c;foo=bar;baz`, `a=?0, b, c;foo=bar;baz`},
	{`a=(), b=(1 2);x, c=(?1;p="q" tok)`, `a=(), b=(1 2);x, c=(?1;p="q" tok)`},
	{"  a=1 ,\tb=2", `a=1, b=2`},
	{`a=(  "x"   "y"  );k=1`, `a=("x" "y");k=1`},
	{`a=1; k=2`, `a=1;k=2`},
	{"a=1 \t", `a=1`},
	{`a="x\"y\\z"`, `a="x\"y\\z"`},
	{`a=-999999999999999, b=0`, `a=-999999999999999, b=0`},
	{`a=*tok/x:y, *b=?1`, `a=*tok/x:y, *b`},
	{`sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`, `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`},
}

var sfBad = []string{
	`a=1,`, `a=1,,b=2`, `,a=1`, `A=1`, `1a=1`, `a=1.5`, `a=1234567890123456`, `a=-`, `a=--1`,
	`a="unterminated`, "a=\"bad\nline\"", `a="\x"`, `a="é"`, `a=:!!:`, `a=:AAE:`, `a=:AAF=:`, `a=:AAEC`,
	`a=(1 2`, `a=(1 2)x`, `a=("a""b")`, `a=?2`, `a=?`, `a=1;`, `a=1;=2`, `a=1, a=2`, `a=1;x;x`,
	`a=1 b=2`, "\ta=1", `a=é`, `a=@x`, `a=(1;)`, `a=`, `a=((1))`, `a=1;k=(1)`,
}

func TestParseDictionary(t *testing.T) {
	t.Parallel()
	for _, tc := range sfGood {
		ms, err := parseDictionary(tc.in)
		if err != nil {
			t.Errorf("parseDictionary(%q) = %v, want success", tc.in, err)
			continue
		}
		if got := serializeDictionary(ms); got != tc.canonical {
			t.Errorf("serialize(parse(%q)) = %q, want %q", tc.in, got, tc.canonical)
		}
	}
	for _, in := range sfBad {
		if ms, err := parseDictionary(in); err == nil {
			t.Errorf("parseDictionary(%q) = %q, want error", in, serializeDictionary(ms))
		}
	}
	ms, err := parseDictionary(`a="x\"y", b=:AAEC:, c=-5, d=tok, e=?0`)
	if err != nil {
		t.Fatal(err)
	}
	if got := ms[0].item.value; got != `x"y` {
		t.Errorf("string = %#v, want %#v", got, `x"y`)
	}
	if got, ok := ms[1].item.value.([]byte); !ok || !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Errorf("bytes = %#v, want [0 1 2]", ms[1].item.value)
	}
	if ms[2].item.value != int64(-5) || ms[3].item.value != token("tok") || ms[4].item.value != false {
		t.Errorf("c, d, e = %#v %#v %#v", ms[2].item.value, ms[3].item.value, ms[4].item.value)
	}
}

// FuzzParseDictionary checks that the parser never panics and that anything
// it accepts serializes canonically and re-parses to the same serialization.
func FuzzParseDictionary(f *testing.F) {
	for _, tc := range sfGood {
		f.Add(tc.in)
	}
	for _, in := range sfBad {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := parseDictionary(in)
		if err != nil {
			return
		}
		out := serializeDictionary(ms)
		ms2, err := parseDictionary(out)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", out, in, err)
		}
		if out2 := serializeDictionary(ms2); out2 != out {
			t.Fatalf("serialization not stable: %q -> %q", out, out2)
		}
	})
}

var sentinels = []error{ErrNoSignature, ErrMalformed, ErrMissingComponent, ErrDigestMismatch, ErrAlgorithm,
	ErrExpired, ErrFuture, ErrUnknownKey, ErrInvalidSignature, ErrInvalidKey}

// FuzzVerify feeds arbitrary signature and digest headers to Verify: it must
// never panic, every error must wrap a sentinel, and only the untouched
// golden headers may verify.
func FuzzVerify(f *testing.F) {
	f.Add(goldenInput, goldenSig, goldenDigest)
	f.Add(b26Input, b26Sig, goldenDigest)
	f.Add(goldenInput, goldenSig, "sha-512=:AAAA:, md5=:AAAA:")
	f.Add(`pyhms=("@method" "@query" "@scheme" "@request-target" "@path" "host" "@status");created=1705392742;keyid="k"`, `pyhms=:AAAA:`, goldenDigest)
	f.Add(`pyhms=("date";sf);created=1;keyid="k";expires=2;nonce="x"`, goldenSig, ``)
	for _, in := range sfBad {
		f.Add(in, in, in)
	}
	pub := goldenKey(f).Public().(ed25519.PublicKey)
	v := &Verifier{
		Keys:               map[string]ed25519.PublicKey{goldenKeyID: pub, "k": pub, "short": pub[:3]},
		Now:                func() time.Time { return time.Unix(1705392742, 0) },
		RequiredComponents: []string{},
	}
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		req, err := http.NewRequest(http.MethodPost, goldenURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Date", goldenDate)
		req.Header.Set("Signature-Input", input)
		req.Header.Set("Signature", sig)
		req.Header.Set("Content-Digest", digest)
		_, err = v.Verify(req, []byte(goldenBody))
		if err == nil {
			if input != goldenInput || sig != goldenSig || digest != goldenDigest {
				// Equivalent spellings (whitespace, parameter order kept) may verify;
				// but the signature bytes must be the golden ones.
				ms, perr := parseDictionary(sig)
				if perr != nil || len(ms) != 1 || !bytes.Equal(ms[0].item.value.([]byte), mustSigBytes(t)) {
					t.Fatalf("unexpected success: %q %q %q", input, sig, digest)
				}
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error %v wraps no sentinel", err)
	})
}

func mustSigBytes(t *testing.T) []byte {
	ms, err := parseDictionary(goldenSig)
	if err != nil {
		t.Fatal(err)
	}
	return ms[0].item.value.([]byte)
}

// TestCheckSignatureInputAgreesWithParser: the check SignMessage makes instead of parsing
// its output accepts exactly what the strict parser accepts, on chosen and random labels,
// component names, keyids, algs and created values.
func TestCheckSignatureInputAgreesWithParser(t *testing.T) {
	labels := []string{"sig", "pyhms", "*a", "a-b_c.d*9", "", "Sig", "9a", "a b", "a=", "é", "sig1"}
	strs := []string{"", "date", "@method", "content-digest", `a"b`, `a\b`, "a\nb", "a\tb", "~", "\x7f", "é", " "}
	createds := []int64{0, 1, 1618884473, -5, 999_999_999_999_999, 1_000_000_000_000_000, -1_000_000_000_000_000}
	rng := rand.New(rand.NewPCG(1, 2))
	randStr := func() string {
		b := make([]byte, rng.IntN(4))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	try := func(label string, p SignatureParams) {
		_, perr := parseDictionary(label + "=" + p.String())
		cerr := checkSignatureInput(label, p)
		if (perr == nil) != (cerr == nil) {
			t.Errorf("label %q, params %+v: parser says %v, check says %v", label, p, perr, cerr)
		}
	}
	for _, l := range labels {
		for _, s := range strs {
			for _, c := range createds {
				try(l, SignatureParams{Components: []string{"date", s}, Created: c, KeyID: "k", Alg: "ed25519"})
				try(l, SignatureParams{Components: []string{"date"}, Created: c, KeyID: s, Alg: "ed25519"})
				try(l, SignatureParams{Components: []string{"date"}, Created: c, KeyID: "k", Alg: s})
			}
		}
	}
	for range 20000 {
		try(randStr(), SignatureParams{Components: []string{randStr()}, Created: rng.Int64N(3_000_000_000_000_000) - 1_500_000_000_000_000,
			KeyID: randStr(), Alg: randStr()})
	}
}
