package ubihooks

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// ParseLabelFilter parses "k1:v1,k2:v2": pairs split on ",", each split on its first ":".
// A pair without ":" matches webhooks that have the key with any value, stored as "\x00any".
func ParseLabelFilter(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, ":")
		k = strings.TrimSpace(k)
		if err := ValidateText("labels filter", pair); err != nil {
			return nil, err
		}
		if k == "" {
			return nil, Errorf(EINVALID, "labels filter %q: each pair must look like key:value", pair)
		}
		if !ok {
			v = AnyLabelValue
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

// AnyLabelValue in a label filter matches any value of the key.
const AnyLabelValue = "\x00any"

// MatchLabels reports whether have holds every pair of want (AND): the same value, or
// any value where want's is AnyLabelValue. An empty want matches everything. It is the
// label rule of every list filter (webhooks, deployments, pipelines, versions); stores
// that filter in SQL must agree with it.
func MatchLabels(want, have map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		if !ok || (v != AnyLabelValue && got != v) {
			return false
		}
	}
	return true
}

// ValidateLabels checks label keys and values. Both are text as names are (valid UTF-8,
// no control characters): PostgreSQL cannot store NUL, and a label is shown and matched
// as one line. Keys may not contain ":" or "," and values may not contain ",", because the
// list filter syntax uses them.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return Errorf(EINVALID, "labels: at most %d labels are allowed, got %d", MaxLabels, len(labels))
	}
	for k, v := range labels {
		switch {
		case k == "":
			return Errorf(EINVALID, "labels: keys must not be empty")
		case len(k) > MaxLabelLength || len(v) > MaxLabelLength:
			return Errorf(EINVALID, "labels: %q: keys and values must be at most %d characters", k, MaxLabelLength)
		case !labelText(k):
			return Errorf(EINVALID, "labels: key %q must be valid UTF-8 without control characters", k)
		case !labelText(v):
			return Errorf(EINVALID, "labels: value of %q must be valid UTF-8 without control characters", k)
		case strings.ContainsAny(k, ":,"):
			return Errorf(EINVALID, "labels: key %q must not contain ':' or ','", k)
		case strings.Contains(v, ","):
			return Errorf(EINVALID, "labels: value of %q must not contain ','", k)
		}
	}
	return nil
}

// labelText reports whether s is valid UTF-8 without control characters (NUL, CR, LF,
// tab, DEL …).
func labelText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// SortedLabelKeys returns the keys of m in order, for deterministic output.
func SortedLabelKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
