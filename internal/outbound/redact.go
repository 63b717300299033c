package outbound

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Marker replaces a redacted value.
const Marker = "[redacted]"

// A Redactor hides secret values (such as protected header values, which a receiver may
// echo back) in what is kept of an attempt. Receivers echo values in more forms than one,
// so it hides each value as it is, base64-encoded (standard and URL alphabets, padded or
// not), and any of these written with JSON string escapes (\u003c, \", \\, \/ …) or
// percent-encoded (%3C, + for a space), in either case of hex digits. A base64 encoding
// of a value inside a longer encoded text (such as a Basic credential) is not recognized.
// A nil *Redactor hides nothing.
type Redactor struct {
	forms  [][][]string // per form, per character of the form, its spellings
	margin int          // the longest spelling of a form, in bytes
}

// NewRedactor returns a Redactor hiding values; empty values are ignored.
func NewRedactor(values ...string) *Redactor {
	r := &Redactor{}
	var texts []string
	for _, v := range values {
		if v == "" {
			continue
		}
		// Response bodies are kept as valid UTF-8, so a value is looked for as it reads
		// there: its invalid bytes are U+FFFD as well.
		texts = append(texts, cleanUTF8([]byte(v), false, len(v)*3),
			base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)),
			base64.URLEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)))
	}
	// The longest first, so that a padded base64 form is hidden with its padding.
	slices.SortFunc(texts, longestFirst)
	texts = slices.Compact(texts)
	for _, t := range texts {
		form, size := spellings(t)
		r.forms = append(r.forms, form)
		r.margin = max(r.margin, size)
	}
	return r
}

// spellings returns, for each character of t, the ways it may be written, and the length
// of t written in its longest spellings.
func spellings(t string) ([][]string, int) {
	var form [][]string
	size := 0
	for _, c := range t {
		var alts []string
		if c < utf8.RuneSelf {
			alts = asciiSpellings[c]
		} else {
			alts = spell(c)
		}
		longest := 0
		for _, a := range alts {
			longest = max(longest, len(a))
		}
		size += longest
		form = append(form, alts)
	}
	return form, size
}

// asciiSpellings are the spellings of the ASCII characters, which make up most values:
// computed once, since a Redactor is made for every attempt.
var asciiSpellings = func() (t [utf8.RuneSelf][]string) {
	for c := range rune(utf8.RuneSelf) {
		t[c] = spell(c)
	}
	return t
}()

// spell returns the ways c may be written: as is, as a JSON escape and percent-encoded,
// with lower- and upper-case hex digits.
func spell(c rune) []string {
	alts := []string{string(c)}
	if c < 0x10000 {
		alts = append(alts, fmt.Sprintf(`\u%04x`, c), fmt.Sprintf(`\u%04X`, c))
	} else {
		hi, lo := utf16.EncodeRune(c)
		alts = append(alts, fmt.Sprintf(`\u%04x\u%04x`, hi, lo), fmt.Sprintf(`\u%04X\u%04X`, hi, lo))
	}
	switch c {
	case '"', '\\', '/':
		alts = append(alts, `\`+string(c))
	case '\t':
		alts = append(alts, `\t`)
	case ' ':
		alts = append(alts, "+")
	}
	var lower, upper strings.Builder
	for _, b := range []byte(string(c)) {
		fmt.Fprintf(&lower, "%%%02x", b)
		fmt.Fprintf(&upper, "%%%02X", b)
	}
	alts = append(alts, lower.String(), upper.String())
	// The longest first: a value's last character written "%25" is hidden whole, not as
	// "%" followed by a visible "25".
	slices.SortFunc(alts, longestFirst)
	return slices.Compact(alts)
}

// longestFirst orders strings by decreasing length, then as strings (so that equal ones
// are next to each other).
func longestFirst(a, b string) int {
	if len(a) != len(b) {
		return len(b) - len(a)
	}
	return strings.Compare(a, b)
}

// Redact returns s with every value of r replaced by Marker.
func (r *Redactor) Redact(s string) string {
	if r == nil || len(r.forms) == 0 {
		return s
	}
	return r.excerpt(s, math.MaxInt-len(Marker), false)
}

// excerpt returns s with the values of r replaced by Marker and cut to at most limit
// bytes, on a character boundary and never inside a Marker. When text was cut (by the
// limit, or truncated: s is only the start of a longer text), the excerpt's end may be the
// start of a value whose rest was cut: such an end is replaced by Marker as well. s is
// valid UTF-8.
func (r *Redactor) excerpt(s string, limit int, truncated bool) string {
	var out strings.Builder
	plain := 0 // where the text after the last Marker begins in out
	budget := matchBudget
	for i := 0; i < len(s); {
		n := r.match(s[i:], &budget)
		if budget < 0 {
			return r.spent(out.String(), plain, limit)
		}
		if n > 0 {
			if out.Len()+len(Marker) > limit {
				return endWithMarker(out.String(), plain, limit)
			}
			out.WriteString(Marker)
			plain = out.Len()
			i += n
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		if out.Len()+size > limit {
			return r.cutEnd(out.String(), plain, limit, &budget)
		}
		out.WriteString(s[i : i+size])
		i += size
	}
	if truncated {
		return r.cutEnd(out.String(), plain, limit, &budget)
	}
	return out.String()
}

// matchBudget bounds the steps of matching in one excerpt: a receiver knows the values
// it was sent and could otherwise answer with text that makes matching a long value
// quadratic. When it runs out, the rest of the excerpt is hidden.
const matchBudget = 1 << 20

// cutEnd returns out, an excerpt whose continuation was cut, with the start of a value at
// its end replaced by Marker; plain is where the text after its last Marker begins.
func (r *Redactor) cutEnd(out string, plain, limit int, budget *int) string {
	for p := plain; p < len(out); p++ {
		if r.partial(out[p:], budget) {
			return endWithMarker(out[:p], plain, limit)
		}
		if *budget < 0 {
			return r.spent(out, plain, limit)
		}
	}
	return out
}

// spent ends out when the matching budget ran out: what may be the start of a value at its
// end, as long as the longest spelling of one, is hidden unchecked.
func (r *Redactor) spent(out string, plain, limit int) string {
	q := max(plain, len(out)-r.margin)
	for q > plain && !utf8.RuneStart(out[q]) {
		q--
	}
	return endWithMarker(out[:q], plain, limit)
}

// endWithMarker returns out followed by Marker within limit bytes: out is shortened as
// needed, but never into its last Marker (which ends at plain); when there is no room, the
// excerpt ends with that Marker.
func endWithMarker(out string, plain, limit int) string {
	q := min(len(out), limit-len(Marker))
	if q < plain {
		return out[:plain]
	}
	for q > plain && q < len(out) && !utf8.RuneStart(out[q]) {
		q--
	}
	return out[:q] + Marker
}

// match returns the length of the value of r that s begins with, 0 if none.
func (r *Redactor) match(s string, budget *int) int {
	for _, f := range r.forms {
		if n, full := matchForm(s, f, budget); full {
			return n
		}
	}
	return 0
}

// partial reports whether s (not empty) is the start of a value of r that continues
// beyond s.
func (r *Redactor) partial(s string, budget *int) bool {
	for _, f := range r.forms {
		if n, full := matchForm(s, f, budget); !full && n == len(s) {
			return true
		}
	}
	return false
}

// matchForm matches s against the spellings of f from the start of s: a whole match of
// f returns its length and true; a match that s ends before f does returns len(s) and
// false; no match returns 0 (or less than len(s)) and false. It backtracks, since the
// spelling of one character may begin as another's does ("%" and "%25"). Each step
// spends one of budget; once it is spent, matchForm matches nothing.
func matchForm(s string, f [][]string, budget *int) (int, bool) {
	if len(f) == 0 {
		return 0, true
	}
	if *budget--; s == "" || *budget < 0 {
		return 0, false
	}
	best := 0
	for _, alt := range f[0] {
		switch {
		case strings.HasPrefix(s, alt):
			n, full := matchForm(s[len(alt):], f[1:], budget)
			if full {
				return len(alt) + n, true
			}
			if len(alt)+n == len(s) {
				best = len(s)
			}
		case strings.HasPrefix(alt, s):
			best = len(s)
		}
	}
	return best, false
}
