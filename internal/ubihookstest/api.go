package ubihookstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Obj is a JSON object, to build bodies and read answers.
type Obj = map[string]any

// API calls the ubihooks REST API as a client does. The Must methods fail the test on any
// surprise, so they belong on the test's goroutine; Call is for other goroutines.
type API struct {
	T testing.TB
	// URL prefixes every path: the server, the base path, and a project when the paths
	// are relative to one (see Project).
	URL string
	// Token is sent as "Authorization: Token <Token>"; an empty one sends no
	// Authorization (Header may send one of any form).
	Token string
	// Header is sent with every call (a client's User-Agent, say).
	Header http.Header
}

// ServeAPI serves h (the API handler) on an httptest server that closes after the
// services stopped, and returns a client of it with the Env's token, whose paths start
// below basePath ("/v2.1").
func (e *Env) ServeAPI(h http.Handler, basePath string) *API {
	srv := httptest.NewServer(h)
	e.Defer(srv.Close)
	return &API{T: e.T, URL: srv.URL + basePath, Token: e.Token}
}

// Project returns a client whose paths are relative to /projects/<name>.
func (a *API) Project(name string) *API {
	c := *a
	c.URL += "/projects/" + name
	return &c
}

// As returns a copy of the client that calls with another token.
func (a *API) As(token string) *API {
	c := *a
	c.Token = token
	return &c
}

// Auth returns a copy of the client that sends auth as its Authorization header as it is,
// and none when auth is "": to see what the API makes of missing or malformed
// credentials.
func (a *API) Auth(auth string) *API {
	c := *a
	c.Token = ""
	c.Header = a.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Del("Authorization")
	if auth != "" {
		c.Header.Set("Authorization", auth)
	}
	return &c
}

// Response is an answer of the API.
type Response struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

// String describes the call and its answer for failure messages.
func (r Response) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.Method, r.Path, r.Status, r.Body)
}

// request builds a call: body is nil, a string or []byte (sent as is, with ctype or
// application/json) or a value to marshal.
func (a *API) request(method, path string, body any, ctype string) (*http.Request, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if ctype == "" {
		ctype = "application/json"
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/json")
	if a.Token != "" {
		req.Header.Set("Authorization", "Token "+a.Token)
	}
	for k, vs := range a.Header {
		req.Header[k] = vs
	}
	return req, nil
}

// Do sends one call and returns the answer; a transport error fails the test.
func (a *API) Do(method, path string, body any, ctype string) Response {
	a.T.Helper()
	req, err := a.request(method, path, body, ctype)
	if err != nil {
		a.T.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.T.Fatal(err)
	}
	return Response{Method: method, Path: path, Status: res.StatusCode, Header: res.Header, Body: b}
}

// JSON returns the decoded JSON body (nil when empty); a body that is not JSON fails t.
func (r Response) JSON(t testing.TB) any {
	t.Helper()
	var v any
	if len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatalf("%s: not JSON: %v", r, err)
		}
	}
	return v
}

// Object returns the body decoded as a JSON object; any other body fails t.
func (r Response) Object(t testing.TB) Obj {
	t.Helper()
	m, ok := r.JSON(t).(Obj)
	if !ok {
		t.Fatalf("%s: the body is not an object", r)
	}
	return m
}

// List returns the body decoded as a JSON array of objects; any other body fails t.
func (r Response) List(t testing.TB) []Obj {
	t.Helper()
	list, ok := r.JSON(t).([]any)
	if !ok {
		t.Fatalf("%s: the body is not an array", r)
	}
	out := make([]Obj, len(list))
	for i, x := range list {
		if out[i], ok = x.(Obj); !ok {
			t.Fatalf("%s: item %d is not an object", r, i)
		}
	}
	return out
}

// MustDo sends one call and fails the test unless the API answers want.
func (a *API) MustDo(method, path string, body any, want int) Response {
	a.T.Helper()
	r := a.Do(method, path, body, "")
	if r.Status != want {
		a.T.Fatalf("%s: want %d", r, want)
	}
	return r
}

// Must sends one call, fails the test unless the API answers want, and returns the
// decoded JSON body (nil when empty).
func (a *API) Must(method, path string, body any, want int) any {
	a.T.Helper()
	return a.MustDo(method, path, body, want).JSON(a.T)
}

// MustObj is Must for an answer that is a JSON object.
func (a *API) MustObj(method, path string, body any, want int) Obj {
	a.T.Helper()
	return a.MustDo(method, path, body, want).Object(a.T)
}

// MustList is Must for an answer that is a JSON array of objects.
func (a *API) MustList(method, path string, body any, want int) []Obj {
	a.T.Helper()
	return a.MustDo(method, path, body, want).List(a.T)
}

// Call sends one call and decodes a 2xx answer into out (when not nil). It touches no
// testing.TB, so goroutines other than the test's may use it; an answer of 300 or more is
// an error that holds the status and body.
func (a *API) Call(method, path string, body, out any) (int, error) {
	req, err := a.request(method, path, body, "")
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

// Decode is Call on the test's goroutine: any error fails the test.
func (a *API) Decode(method, path string, body, out any) {
	a.T.Helper()
	if _, err := a.Call(method, path, body, out); err != nil {
		a.T.Fatal(err)
	}
}
