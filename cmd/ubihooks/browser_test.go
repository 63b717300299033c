package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// secretValue is the protected header value of the browser tests: no page may show it.
const secretValue = "s3cret-Zq8PXvN2"

func TestUISignIn(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	tb := e.newTab(false)

	// Any UI page sends a signed-out browser to the sign-in page, and back after it.
	tb.open("/ui/p/demo/webhooks")
	if loc := tb.location(); !strings.Contains(loc, "/ui/login?next=") {
		t.Fatalf("signed out, /ui/p/demo/webhooks went to %s, want the sign-in page", loc)
	}
	tb.check("login")
	tb.do("wrong token", chromedp.SetValue(chromedp.ID("f-token"), "ubh_wrong"), chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("token-error")))
	if got := tb.text("#token-error"); got != "invalid token" {
		t.Errorf("wrong token: the field says %q, want the API's message %q", got, "invalid token")
	}
	if focused := run(tb, "focus", chromedp.Evaluate[string]("document.activeElement.id")); focused != "error-summary" && focused != "f-token" {
		t.Errorf("after a wrong token the focus is on %q, want the error or the field", focused)
	}
	tb.check("login-error")
	tb.do("good token", chromedp.SetValue(chromedp.ID("f-token"), "Token "+e.token), chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".filters")))
	if loc := tb.location(); loc != e.base+"/ui/p/demo/webhooks" {
		t.Errorf("after sign-in the browser is at %s, want back at /ui/p/demo/webhooks", loc)
	}

	cookies := run(tb, "cookies", chromedp.Action[[]*network.Cookie](func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{e.base + "/ui/"}})
		return r.Cookies, err
	}))
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "ubihooks_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session cookie after sign-in: %+v", cookies)
	}
	if !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/ui" || session.Value == e.token {
		t.Errorf("session cookie: HttpOnly %v, SameSite %q, Path %q, holds the token %v; want HttpOnly, Strict, /ui, a session id",
			session.HTTPOnly, session.SameSite, session.Path, session.Value == e.token)
	}
	if got := run(tb, "document.cookie", chromedp.Evaluate[string]("document.cookie")); strings.Contains(got, session.Value) {
		t.Errorf("scripts can read the session cookie: %q", got)
	}

	// The API never takes the cookie.
	req, _ := http.NewRequest("GET", e.base+"/v2.1/projects/demo/webhooks", nil)
	req.Header.Set("Cookie", "ubihooks_session="+session.Value)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API with only the session cookie: %v %v, want 401", res.StatusCode, err)
	}

	// A cross-site form post is refused, even with the cookie.
	form := url.Values{"enabled": {"false"}}.Encode()
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
		req, _ := http.NewRequest("POST", e.base+"/ui/logout", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", "ubihooks_session="+session.Value)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden || res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("cross-site POST with %v: %d, want 403 with the UI's headers\n%s", h, res.StatusCode, body)
		}
	}
	// The session survived the refused logouts: the page still opens.
	tb.open("/ui/p/demo/")
	tb.check("overview-empty")
	tb.open("/ui/signing-keys")
	tb.check("signing-keys")

	// Sign out ends the session on the server, not only in this browser.
	tb.do("sign out", chromedp.Click(chromedp.CSS(`form[action="/ui/logout"] button`)), chromedp.WaitVisible(chromedp.ID("f-token")))
	req, _ = http.NewRequest("GET", e.base+"/ui/p/demo/", nil)
	req.Header.Set("Cookie", "ubihooks_session="+session.Value)
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
		t.Errorf("the old session after sign-out: %d to %q, want a redirect to the sign-in page", res.StatusCode, res.Header.Get("Location"))
	}
}

// fillWebhook fills the create form.
func fillWebhook(tb *tab, name, object, event, target string) {
	tb.t.Helper()
	tb.do("fill the form",
		chromedp.SetValue(chromedp.ID("f-name"), name),
		chromedp.SetValue(chromedp.ID("f-description"), "Tells the team"),
		chromedp.SetValue(chromedp.ID("f-object"), object),
		chromedp.SetValue(chromedp.ID("f-event"), event),
		chromedp.SetValue(chromedp.ID("f-url"), target),
		chromedp.SetValue(chromedp.ID("f-timeout"), "7"),
		chromedp.SetValue(chromedp.CSS(`[name=header_key_0]`), "Authorization"),
		chromedp.SetValue(chromedp.CSS(`[name=header_value_0]`), secretValue),
		chromedp.Click(chromedp.CSS(`[name=header_protected_0]`)),
		chromedp.Click(chromedp.CSS(`button[data-add-row=header-row]`)),
		chromedp.SetValue(chromedp.CSS(`[name=header_key_1]`), "X-Team"),
		chromedp.SetValue(chromedp.CSS(`[name=header_value_1]`), "ml"),
		chromedp.SetValue(chromedp.CSS(`[name=label_key_0]`), "env"),
		chromedp.SetValue(chromedp.CSS(`[name=label_value_0]`), "prod"),
		chromedp.Click(chromedp.ID("f-retry")),
		chromedp.Click(chromedp.ID("f-include_result")),
	)
}

func (tb *tab) noSecret(where string) {
	tb.t.Helper()
	if strings.Contains(tb.html(), secretValue) {
		tb.t.Errorf("%s: the page's HTML holds the protected value", where)
	}
}

func TestUIWebhookLifecycle(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	// The receiver echoes what it got, headers included, as its response: the stored
	// excerpt holds the secret, and no page may show it.
	echo := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("<img src=x onerror=alert(1)> auth=" + a.Header.Get("Authorization")))
	})
	e.deployment("a/b <x>", "")
	tb := e.newTab(true)

	tb.open("/ui/p/demo/new-webhook")
	tb.check("create-form")
	fillWebhook(tb, "a/b <x>", "deployment:a/b <x>", "deployment_request_finished", echo.URL+"/hook")
	// A failed save keeps the other values, shows the API's message at the field and
	// sends no protected value back.
	tb.do("timeout 31", chromedp.SetValue(chromedp.ID("f-timeout"), "31"), chromedp.Click(chromedp.CSS(`button[value=save]`)),
		chromedp.WaitVisible(chromedp.ID("timeout-error")))
	if got, want := tb.text("#timeout-error"), "timeout must be between 1 and 30 seconds, got 31"; got != want {
		t.Errorf("timeout 31: the field says %q, want %q", got, want)
	}
	for id, want := range map[string]string{"f-name": "a/b <x>", "f-url": echo.URL + "/hook", "f-description": "Tells the team", "f-event": "deployment_request_finished"} {
		if got := run(tb, "value", chromedp.Value(chromedp.ID(id))); got != want {
			t.Errorf("after the failed save, %s = %q, want %q", id, got, want)
		}
	}
	tb.noSecret("create form after a failed save")
	tb.check("create-form-error")

	// Fix it, re-enter the secret (it was not sent back) and save.
	tb.do("save", chromedp.SetValue(chromedp.ID("f-timeout"), "7"), chromedp.SetValue(chromedp.CSS(`[name=header_value_0]`), secretValue),
		chromedp.Click(chromedp.CSS(`button[value=save]`)), chromedp.WaitVisible(chromedp.ID("h-settings")))
	tb.noSecret("detail")
	tb.check("webhook-detail")

	got := e.api.MustObj("GET", "/webhooks/"+url.PathEscape("a/b <x>"), nil, 200)
	want := map[string]any{"name": "a/b <x>", "object_type": "deployment", "object_name": "a/b <x>", "version": nil, "event": "deployment_request_finished",
		"url": echo.URL + "/hook", "description": "Tells the team", "timeout": float64(7), "retry": true, "include_result": true, "enabled": true,
		"labels": map[string]any{"env": "prod"}}
	for k, w := range want {
		if g := got[k]; !equalJSON(g, w) {
			t.Errorf("GET webhook %s = %#v, want %#v", k, g, w)
		}
	}
	hs, _ := got["headers"].([]any)
	if len(hs) != 2 || !equalJSON(hs[0], map[string]any{"key": "Authorization", "value": nil, "protected": true}) ||
		!equalJSON(hs[1], map[string]any{"key": "X-Team", "value": "ml", "protected": false}) {
		t.Errorf("GET webhook headers = %#v", hs)
	}

	// Disable and enable again from the detail page.
	tb.do("disable", chromedp.Click(chromedp.CSS(`form[action$="/enabled"] button`)))
	tb.waitText(".notice", "Webhook disabled.", 10*time.Second)
	if got := e.api.MustObj("GET", "/webhooks/"+url.PathEscape("a/b <x>"), nil, 200)["enabled"]; got != false {
		t.Errorf("after Disable, enabled = %v", got)
	}
	tb.do("enable", chromedp.Click(chromedp.CSS(`form[action$="/enabled"] button`)))
	tb.waitText(".notice", "Webhook enabled.", 10*time.Second)
	if got := e.api.MustObj("GET", "/webhooks/"+url.PathEscape("a/b <x>"), nil, 200)["enabled"]; got != true {
		t.Errorf("after Enable, enabled = %v", got)
	}

	// Test from the detail page: the stored secret is sent, and the panel turns completed.
	tb.do("test", chromedp.Click(chromedp.CSS(`button[data-test-button]`)))
	tb.waitText("#test-result", "completed", 15*time.Second)
	tb.waitText("#test-result", "HTTP 200", 5*time.Second)
	arrivals := echo.Arrivals()
	if len(arrivals) != 1 || arrivals[0].Header.Get("Authorization") != secretValue || arrivals[0].SigErr != nil {
		t.Fatalf("the test's arrival: %d arrivals, auth %v, sig %v", len(arrivals), len(arrivals) > 0 && arrivals[0].Header.Get("Authorization") == secretValue, arrivals)
	}
	// The echoed markup is text, and the echoed secret is not shown.
	tb.do("open the response", chromedp.Click(chromedp.CSS(`#test-result details summary`)))
	if n := run(tb, "img", chromedp.Evaluate[int](`document.querySelectorAll("#test-result img").length`)); n != 0 {
		t.Errorf("the response excerpt became markup: %d img elements", n)
	}
	tb.noSecret("detail with the test panel")
	tb.check("webhook-detail-tested")

	// Edit: the stored secret shows as stored, never as its value.
	tb.open("/ui/p/demo/webhooks/" + url.PathEscape("a/b <x>") + "/edit")
	tb.noSecret("edit form")
	tb.check("edit-form")
	tb.do("edit", chromedp.SetValue(chromedp.ID("f-description"), "Changed"), chromedp.Click(chromedp.CSS(`button[value=save]`)),
		chromedp.WaitVisible(chromedp.ID("h-settings")))
	got = e.api.MustObj("GET", "/webhooks/"+url.PathEscape("a/b <x>"), nil, 200)
	if got["description"] != "Changed" {
		t.Errorf("after the edit, description = %v", got["description"])
	}

	// The list renders the name literally and its link works.
	tb.open("/ui/p/demo/webhooks")
	if !strings.Contains(tb.text("table"), "a/b <x>") {
		t.Errorf("the list does not show the name literally:\n%s", tb.text("table"))
	}
	tb.noSecret("list")
	tb.check("webhook-list")
	tb.do("follow the link", chromedp.Click(chromedp.CSS(`td.name a`)), chromedp.WaitVisible(chromedp.ID("h-settings")))
	if h1 := tb.text("h1"); !strings.Contains(h1, "a/b <x>") {
		t.Errorf("the link led to %q", h1)
	}

	// A request sent through the API appears as a delivery that turns succeeded live.
	req := e.api.MustList("POST", "/deployments/"+url.PathEscape("a/b <x>")+"/requests/batch", []any{map[string]any{}}, 201)
	reqID, _ := req[0]["id"].(string)
	_ = reqID
	claim := e.api.MustList("POST", "/deployments/"+url.PathEscape("a/b <x>")+"/versions/v1/runtime/claim", nil, 200)
	if len(claim) != 1 {
		t.Fatalf("claimed %d requests", len(claim))
	}
	e.api.MustDo("POST", "/deployments/"+url.PathEscape("a/b <x>")+"/versions/v1/runtime/requests/"+reqID, map[string]any{"lease_token": claim[0]["lease_token"], "status": "completed", "result": map[string]any{"ok": true}}, 200)
	tb.waitText("#delivery-rows tbody", "succeeded", 20*time.Second)
	tb.check("webhook-detail-delivered")
	tb.noSecret("deliveries")

	// Search by the event id finds it; the delivery page shows the attempt.
	var eventID string
	for _, a := range echo.Arrivals() {
		if a.Payload["request_id"] == reqID {
			eventID = a.ID()
		}
	}
	if eventID == "" {
		t.Fatalf("the receiver got no delivery of request %s", reqID)
	}
	tb.do("search", chromedp.SetValue(chromedp.ID("site-search"), eventID), chromedp.Submit(chromedp.ID("site-search")), chromedp.WaitVisible(chromedp.CSS("table")))
	if got := tb.text("tbody"); !strings.Contains(got, "a/b <x>") || !strings.Contains(got, eventID) {
		t.Errorf("search by event id: %s", tb.text("main"))
	}
	tb.check("search")
	tb.do("open the delivery", chromedp.Click(chromedp.CSS(`td a`)), chromedp.WaitVisible(chromedp.ID("event-id")))
	tb.noSecret("delivery")
	tb.check("delivery")

	// Redeliver: same event id.
	before := echo.Count()
	tb.do("redeliver", chromedp.Click(chromedp.CSS(`form[action$="/redeliver"] button`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	echo.Until(t, 20*time.Second, "the redelivery", func() bool { return echo.Count() > before })
	if last := echo.Arrivals()[echo.Count()-1]; last.ID() != eventID {
		t.Errorf("redelivery sent event id %q, want %q", last.ID(), eventID)
	}
	tb.open("/ui/p/demo/deliveries?q=" + url.QueryEscape(reqID))
	tb.check("search-by-request")
	tb.open("/ui/p/demo/deployments/" + url.PathEscape("a/b <x>") + "/requests/" + reqID)
	if !strings.Contains(tb.text("main"), "a/b <x>") {
		t.Errorf("the request page does not list its delivery:\n%s", tb.text("main"))
	}
	tb.check("request")
	tb.open("/ui/p/demo/deployments/" + url.PathEscape("a/b <x>") + "/requests")
	tb.check("requests")
	tb.open("/ui/p/demo/")
	tb.check("overview")
	tb.open("/ui/p/demo/events")
	tb.check("events")

	// Delete with its confirmation.
	tb.open("/ui/p/demo/webhooks/" + url.PathEscape("a/b <x>") + "/delete")
	tb.check("delete")
	tb.do("delete", chromedp.Click(chromedp.CSS(`button.danger`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	e.api.MustDo("GET", "/webhooks/"+url.PathEscape("a/b <x>"), nil, 404)
}

func equalJSON(a, b any) bool {
	switch b := b.(type) {
	case map[string]any:
		am, ok := a.(map[string]any)
		if !ok || len(am) != len(b) {
			return false
		}
		for k, v := range b {
			if !equalJSON(am[k], v) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func TestUITestResults(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	e.deployment("model", "")
	ok := e.receiver(nil)
	bad := e.receiver(ubihookstest.StatusBody(500, "boom"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: the test's connection is refused
	tb := e.newTab(true)

	for _, tt := range []struct {
		name, url, want, detail string
	}{
		{"ok", ok.URL + "/hook", "completed", "HTTP 200"},
		{"500", bad.URL + "/hook", "failed", "HTTP 500"},
		{"closed", closedURL + "/hook", "failed", "connect"},
	} {
		tb.open("/ui/p/demo/new-webhook")
		tb.do("fill "+tt.name, chromedp.SetValue(chromedp.ID("f-object"), "deployment:model"),
			chromedp.SetValue(chromedp.ID("f-event"), "deployment_request_completed"), chromedp.SetValue(chromedp.ID("f-url"), tt.url),
			chromedp.Click(chromedp.CSS(`button[data-test-button]`)))
		t.Logf("case %s", tt.name)
		tb.waitText("#test-result", tt.want, 20*time.Second)
		tb.waitText("#test-result", tt.detail, 5*time.Second)
		tb.check("test-" + tt.name)
	}
	if ok.Count() != 1 || bad.Count() != 1 {
		t.Errorf("arrivals: ok %d, 500 %d; want one test each", ok.Count(), bad.Count())
	}
}

func TestUICreateWithoutJavaScript(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	e.deployment("model", "")
	rcv := e.receiver(nil)
	tb := e.newTab(true)
	tb.do("disable scripts", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	tb.open("/ui/p/demo/new-webhook")
	tb.do("fill", chromedp.SetValue(chromedp.ID("f-name"), "plain"), chromedp.SetValue(chromedp.ID("f-object"), "deployment:model"),
		chromedp.SetValue(chromedp.ID("f-event"), "deployment_request_failed"), chromedp.SetValue(chromedp.ID("f-url"), rcv.URL),
		chromedp.SetValue(chromedp.CSS(`[name=header_key_0]`), "X-Key"), chromedp.SetValue(chromedp.CSS(`[name=header_value_0]`), secretValue),
		chromedp.Click(chromedp.CSS(`[name=header_protected_0]`)),
		chromedp.Click(chromedp.CSS(`button[value=save]`)), chromedp.WaitVisible(chromedp.ID("h-settings")))
	w := e.api.MustObj("GET", "/webhooks/plain", nil, 200)
	if w["event"] != "deployment_request_failed" || strings.TrimSuffix(w["url"].(string), "/") != rcv.URL {
		t.Errorf("created without JavaScript: %v", w)
	}
	tb.noSecret("detail without JavaScript")
	// The test button works too: a page of its own that refreshes itself.
	tb.do("test", chromedp.Click(chromedp.CSS(`button[data-test-button]`)), chromedp.WaitVisible(chromedp.CSS(".test-panel")))
	tb.waitText(".test-panel", "completed", 20*time.Second)
	tb.noSecret("test page")
	tb.check("test-page-no-js")
}
