package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/client"
)

// seen is one request as the fake server received it.
type seen struct {
	Method, EscapedPath, Query, Auth, ContentType string
	Body                                          string
}

// fake answers every call with the status and body of the handler func and records the
// requests.
func fake(t *testing.T, status int, body string) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
		mu.Unlock()
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

func TestPathsAreEscapedAndTokenSent(t *testing.T) {
	t.Parallel()
	srv, got := fake(t, 200, `{"name":"a/b","url":"http://x/","event":"deployment_request_completed","labels":{}}`)
	c := client.New(srv.URL, "tok")
	w, err := c.GetWebhook(context.Background(), "p 1", "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if w.Name != "a/b" {
		t.Errorf("name = %q", w.Name)
	}
	r := got()[0]
	if r.EscapedPath != "/v2.1/projects/p%201/webhooks/a%2Fb" {
		t.Errorf("path = %q", r.EscapedPath)
	}
	if r.Auth != "Token tok" {
		t.Errorf("Authorization = %q", r.Auth)
	}
	if r.Method != http.MethodGet || r.Body != "" {
		t.Errorf("got %s with body %q", r.Method, r.Body)
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://h:1":             "http://h:1/v2.1",
		"http://h:1/":            "http://h:1/v2.1",
		"https://h/v2.1":         "https://h/v2.1",
		"https://h/prefix/v2.1/": "https://h/prefix/v2.1",
	} {
		if got := client.New(in, "").BaseURL(); got != want {
			t.Errorf("New(%q).BaseURL() = %q, want %q", in, got, want)
		}
	}
}

func TestTokenWithSchemeIsSentVerbatim(t *testing.T) {
	t.Parallel()
	srv, got := fake(t, 200, `{"status":"ok"}`)
	if _, err := client.New(srv.URL, "Token abc").Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := got()[0].Auth; a != "Token abc" {
		t.Errorf("Authorization = %q", a)
	}
}

func TestBodiesLeaveOutNulls(t *testing.T) {
	t.Parallel()
	srv, got := fake(t, 200, `{"name":"w","url":"http://x/","event":"e"}`)
	c := client.New(srv.URL, "tok")
	prot := true
	desc := "d"
	_, err := c.UpdateWebhook(context.Background(), "p", "w", ubihooks.WebhookUpdate{
		Description: &desc,
		Headers:     &[]ubihooks.HeaderInput{{Key: "X-Secret", Protected: &prot}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := got()[0]
	if r.Method != http.MethodPatch || r.ContentType != "application/json" {
		t.Errorf("got %s with Content-Type %q", r.Method, r.ContentType)
	}
	if strings.Contains(r.Body, "null") {
		t.Errorf("body has a null: %s", r.Body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["description"] != "d" {
		t.Errorf("body = %s, want only description and headers", r.Body)
	}
	h := m["headers"].([]any)[0].(map[string]any)
	if _, ok := h["value"]; ok || h["protected"] != true || h["key"] != "X-Secret" {
		t.Errorf("header = %v", h)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"error", `{"error":"webhook \"x\" not found"}`, 404, `webhook "x" not found`},
		{"error_message", `{"error_message":"boom"}`, 400, "boom"},
		{"raw", `not json`, 502, "not json"},
		{"empty", ``, 503, "Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fake(t, tc.status, tc.body)
			_, err := client.New(srv.URL, "tok").GetProject(context.Background(), "p")
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *client.Error", err, err)
			}
			if e.StatusCode != tc.status || e.Message != tc.want {
				t.Errorf("got %d %q, want %d %q", e.StatusCode, e.Message, tc.status, tc.want)
			}
			if client.StatusCode(err) != tc.status || client.IsNotFound(err) != (tc.status == 404) {
				t.Errorf("StatusCode/IsNotFound disagree with %v", err)
			}
		})
	}
}

func TestDeleteAndEmptyLists(t *testing.T) {
	t.Parallel()
	srv, got := fake(t, http.StatusNoContent, "")
	c := client.New(srv.URL, "tok")
	if err := c.DeleteWebhook(context.Background(), "p", "w"); err != nil {
		t.Fatal(err)
	}
	if r := got()[0]; r.Method != http.MethodDelete || r.EscapedPath != "/v2.1/projects/p/webhooks/w" {
		t.Errorf("got %s %s", r.Method, r.EscapedPath)
	}
	srv2, got2 := fake(t, 200, `[]`)
	ws, err := client.New(srv2.URL, "tok").ListWebhooks(context.Background(), "p", client.WebhookListOptions{
		Labels: map[string]string{"b": "2", "a": "1"}, ObjectType: "deployment", Event: "deployment_request_failed"})
	if err != nil {
		t.Fatal(err)
	}
	if ws == nil || len(ws) != 0 {
		t.Errorf("list = %#v, want empty non-nil", ws)
	}
	if q := got2()[0].Query; q != "event=deployment_request_failed&labels=a%3A1%2Cb%3A2&object_type=deployment" {
		t.Errorf("query = %q", q)
	}
}
