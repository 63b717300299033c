package api_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// fuzzSecret is the protected value of the fuzz target webhook; no answer may contain it.
const fuzzSecret = "fuzz-protected-value-5e1f"

func fuzzBody(tb testing.TB, body any) []byte {
	switch b := body.(type) {
	case string:
		return []byte(b)
	case []byte:
		return b
	}
	j, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// FuzzWebhookBodies posts arbitrary bodies to the webhook create and update endpoints of a
// real server and checks that it never answers 5xx, that errors are {"error": "..."}
// JSON, that successes are valid WebhookDetail models, and that the protected value never
// comes back.
func FuzzWebhookBodies(f *testing.F) {
	for _, tc := range createCases {
		f.Add(true, fuzzBody(f, tc.body))
	}
	for _, tc := range updateCases {
		f.Add(false, fuzzBody(f, tc.body))
	}
	for _, b := range []M{
		webhook("fz-ok", set("version", "v1"), set("labels", M{"a": "1"}), set("timeout", 30), set("retry", true),
			set("headers", []M{{"key": "X-K", "value": "v", "protected": true}, {"key": "X-P", "value": "p", "protected": false}})),
		webhook("fz-pipe", set("object_type", "pipeline"), set("object_name", "pipe"), set("event", "pipeline_request_finished")),
		webhook("fz-url", set("url", "HTTP://Example.COM:80/a%7Eb?x=%2f#f")),
	} {
		f.Add(true, fuzzBody(f, b))
	}
	for _, b := range []M{
		{"headers": []M{{"key": "X-Secret", "protected": true}}, "description": "keep"},
		{"headers": []M{{"key": "X-Secret", "value": "new", "protected": true}}, "labels": M{"a": "b"}},
		{"name": "fz-renamed", "url": "https://example.com/x", "event": "deployment_request_failed", "timeout": 1, "enabled": false},
	} {
		f.Add(false, fuzzBody(f, b))
	}

	e := newAPIEnv(f)
	e.A.MustDo("POST", "/webhooks", webhook("dup"), 201)
	e.A.MustDo("POST", "/webhooks", webhook("other"), 201)
	target := fuzzBody(f, webhook("fz-target", set("headers", []M{{"key": "X-Secret", "value": fuzzSecret, "protected": true}})))

	// Inputs run one after another, without t.Parallel: they share one server and its
	// "fz-target" webhook, and each leaves the project as it found it. (While fuzzing,
	// t.Parallel would have no effect anyway; on the seed corpus it would race.)
	f.Fuzz(func(t *testing.T, create bool, body []byte) {
		c := *e.A // a failing input fails its own t
		c.T = t
		check := func(r ubihookstest.Response, ok int) {
			t.Helper()
			if r.Status >= 500 {
				t.Fatalf("%s\nbody sent: %q", r, body)
			}
			if r.Status >= 400 {
				checkErrorBody(t, r)
				return
			}
			if r.Status != ok {
				t.Fatalf("%s: want %d or a 4xx", r, ok)
			}
			expectModel(t, r, "WebhookDetail")
			// The stored URL is a valid URL already in normal form.
			var w struct {
				URL string `json:"url"`
			}
			_ = json.Unmarshal(r.Body, &w)
			if _, err := url.Parse(w.URL); err != nil {
				t.Fatalf("%s: the stored url does not parse: %v", r, err)
			}
			if n, err := ubihooks.NormalizeURL(w.URL); err != nil || n != w.URL {
				t.Fatalf("%s: the stored url is not in normal form: %q, %v", r, n, err)
			}
			if !bytes.Contains(body, []byte(fuzzSecret)) && bytes.Contains(r.Body, []byte(fuzzSecret)) {
				t.Fatalf("%s: the answer holds the protected value", r)
			}
		}
		// cleanUp deletes a webhook an input created, so that the next input starts alike.
		cleanUp := func(r ubihookstest.Response) {
			t.Helper()
			var w struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(r.Body, &w); err != nil || w.Name == "" {
				t.Fatalf("%s: no name in the answer", r)
			}
			if d := c.Do("DELETE", "/webhooks/"+url.PathEscape(w.Name), nil, ""); d.Status != 204 {
				t.Fatalf("cleaning up: %s", d)
			}
		}
		if create {
			r := c.Do("POST", "/webhooks", body, "")
			check(r, 201)
			if r.Status == 201 {
				cleanUp(r)
			}
			return
		}
		if r := c.Do("GET", "/webhooks/fz-target", nil, ""); r.Status == 404 {
			if c := c.Do("POST", "/webhooks", target, ""); c.Status != 201 {
				t.Fatalf("creating the target: %s", c)
			}
		}
		r := c.Do("PATCH", "/webhooks/fz-target", body, "")
		check(r, 200)
		if r.Status == 200 {
			cleanUp(r) // the PATCH may have renamed it or dropped its secret
		}
	})
}
