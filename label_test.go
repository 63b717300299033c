package ubihooks

import "testing"

func TestMatchLabels(t *testing.T) {
	t.Parallel()
	have := map[string]string{"team": "a", "env": "prod:eu", "empty": ""}
	for _, tc := range []struct {
		name string
		want map[string]string
		have map[string]string
		ok   bool
	}{
		{"no filter", nil, have, true},
		{"empty filter, no labels", map[string]string{}, nil, true},
		{"one pair", map[string]string{"team": "a"}, have, true},
		{"every pair", map[string]string{"team": "a", "env": "prod:eu"}, have, true},
		{"one pair missing (AND)", map[string]string{"team": "a", "owner": "x"}, have, false},
		{"other value", map[string]string{"team": "b"}, have, false},
		{"any value", map[string]string{"env": AnyLabelValue}, have, true},
		{"any value, key missing", map[string]string{"owner": AnyLabelValue}, have, false},
		{"empty value is a value", map[string]string{"empty": ""}, have, true},
		{"empty value does not match a missing key", map[string]string{"owner": ""}, have, false},
		{"filter on no labels", map[string]string{"team": "a"}, nil, false},
	} {
		if got := MatchLabels(tc.want, tc.have); got != tc.ok {
			t.Errorf("%s: MatchLabels(%v, %v) = %v, want %v", tc.name, tc.want, tc.have, got, tc.ok)
		}
		// WebhookFilter.Match applies the same rule to a webhook's labels.
		if got := (WebhookFilter{Labels: tc.want}).Match(&Webhook{Labels: tc.have}); got != tc.ok {
			t.Errorf("%s: WebhookFilter.Match = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestValidateLabels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		labels map[string]string
		ok     bool
	}{
		{map[string]string{"team": "a b", "ключ": "значение"}, true},
		{map[string]string{"k": ""}, true},
		{map[string]string{"": "v"}, false},
		{map[string]string{"k\x00": "v"}, false},
		{map[string]string{"k": "v\x00"}, false},
		{map[string]string{"k": "a\r\nb"}, false},
		{map[string]string{"k\n": "v"}, false},
		{map[string]string{"k": "\x7f"}, false},
		{map[string]string{"k": "\xff"}, false},
		{map[string]string{"\xc3\x28": "v"}, false},
		{map[string]string{"a:b": "v"}, false},
		{map[string]string{"k": "a,b"}, false},
	} {
		err := ValidateLabels(tc.labels)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateLabels(%q) = %v, want ok %v", tc.labels, err, tc.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ValidateLabels(%q): code %q, want %q", tc.labels, ErrorCode(err), EINVALID)
		}
	}
}
