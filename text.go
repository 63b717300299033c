package ubihooks

import (
	"strings"
	"unicode/utf8"
)

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
