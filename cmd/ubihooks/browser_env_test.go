package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
	"github.com/ubihooks/ubihooks/internal/web"
)

// The browser tests drive Debian's chromium through chromedp against the real binary's
// Main. They skip when no Chromium is installed, unless CI is set: there they fail.

var browser struct {
	once  sync.Once
	ctx   context.Context // the browser's chromedp context; tabs derive from it
	err   error
	shots string // the screenshot folder
}

// chromiumPath finds the browser: $UBIHOOKS_TEST_CHROMIUM, else chromium or
// chromium-headless-shell on the PATH.
func chromiumPath() string {
	if p := os.Getenv("UBIHOOKS_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-headless-shell", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startBrowser starts the one browser of the package (tests open tabs in it).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	browser.once.Do(func() {
		path := chromiumPath()
		if path == "" {
			browser.err = fmt.Errorf("no Chromium found (install Debian's chromium, or set UBIHOOKS_TEST_CHROMIUM)")
			return
		}
		dir, err := os.MkdirTemp("", "ubihooks-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.UserDataDir(dir),
			chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
			chromedp.WindowSize(1280, 900))
		// The browser lives as long as the test binary: contexts are never canceled.
		actx, _ := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, _ := chromedp.NewContext(actx)
		if err := chromedp.Do(bctx); err != nil {
			browser.err = fmt.Errorf("start %s: %w", path, err)
			return
		}
		browser.ctx = bctx
		browser.shots = os.Getenv("UBIHOOKS_TEST_ARTIFACTS")
		if browser.shots == "" {
			browser.shots = filepath.Join(os.TempDir(), "ubihooks-ui-screenshots")
		}
		if err := os.MkdirAll(browser.shots, 0o755); err != nil {
			browser.err = err
		}
	})
	if browser.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser tests must run under CI: %v", browser.err)
		}
		t.Skipf("browser tests skipped: %v", browser.err)
	}
	return browser.ctx
}

// uiEnv is a real server (Main on :0 with SQLite), a project token and an API client.
type uiEnv struct {
	t     *testing.T
	base  string // http://127.0.0.1:port
	db    string
	token string
	api   *ubihookstest.API // relative to /v2.1/projects/demo
	keys  *httpsig.Verifier
}

// newUIEnv serves on SQLite in t.TempDir(), with args added to serve's.
func newUIEnv(t *testing.T, args ...string) *uiEnv {
	t.Helper()
	startBrowser(t)
	dir := t.TempDir()
	e := &uiEnv{t: t, db: filepath.Join(dir, "ubihooks.db")}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &ubihookstest.SyncBuffer{}
	addrc := make(chan string, 1)
	m := &Main{Stdout: io.Discard, Stderr: logs, Getenv: func(string) string { return "" }, OnListenFunc: func(a string) { addrc <- a }}
	served := make(chan error, 1)
	go func() {
		served <- m.Run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--database", e.db, "--allow-networks", "127.0.0.0/8", "--shutdown-timeout", "5s"}, args...))
	}()
	select {
	case a := <-addrc:
		e.base = "http://" + a
	case err := <-served:
		t.Fatalf("serve returned before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen within 30s\n%s", logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop")
		}
		// No secret of any test may reach the log.
		if strings.Contains(logs.String(), secretValue) {
			t.Errorf("the server log holds a protected value")
		}
	})
	e.token = e.run("token", "create", "--project", "demo", "--database", e.db)
	e.api = &ubihookstest.API{T: t, URL: e.base + "/v2.1/projects/demo", Token: e.token}
	pemResp, err := http.Get(e.base + "/v2.1/signing-keys/active.pem")
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := io.ReadAll(pemResp.Body)
	pemResp.Body.Close()
	pub, err := httpsig.ParsePublicKeyPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	e.keys = &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{httpsig.KeyID(pub): pub}, MaxAge: 5 * time.Minute}
	return e
}

// run runs a CLI command of the binary and returns what it printed.
func (e *uiEnv) run(args ...string) string {
	e.t.Helper()
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background(), args); err != nil {
		e.t.Fatalf("ubihooks %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out.String())
}

// receiver starts a receiver that verifies signatures with the server's key.
func (e *uiEnv) receiver(respond ubihookstest.Responder) *ubihookstest.Receiver {
	return ubihookstest.NewReceiver(e.t, ubihookstest.ReceiverConfig{Verifier: e.keys, Respond: respond})
}

// deployment creates a deployment with a version without backend (its requests wait
// for an external runtime), or with backend when given.
func (e *uiEnv) deployment(name, backend string) {
	e.t.Helper()
	e.api.MustDo("POST", "/deployments", ubihookstest.Obj{"name": name, "input_type": "structured", "output_type": "structured",
		"input_fields": []any{}, "output_fields": []any{}}, 201)
	v := ubihookstest.Obj{"version": "v1"}
	if backend != "" {
		v["backend_url"] = backend
	}
	e.api.MustDo("POST", "/deployments/"+pathSeg(name)+"/versions", v, 201)
}

func pathSeg(s string) string { return url.PathEscape(s) }

// tab is one browser tab with what it saw: console errors, CSP reports, documents' headers.
type tab struct {
	t   *testing.T
	e   *uiEnv
	ctx context.Context

	mu       sync.Mutex
	problems []string
	docs     map[string]network.Headers // document URL → response headers
}

// newTab opens a tab, signed in unless signedOut.
func (e *uiEnv) newTab(signedIn bool) *tab {
	e.t.Helper()
	// Each tab gets a browser context of its own: cookies are per host, not per port, so
	// the servers of parallel tests would otherwise share one session cookie.
	ctx, cancel := chromedp.NewContext(startBrowser(e.t), chromedp.WithNewBrowserContext())
	e.t.Cleanup(cancel)
	tb := &tab{t: e.t, e: e, ctx: ctx, docs: map[string]network.Headers{}}
	if err := chromedp.Listen(ctx, tb.onEvent); err != nil {
		e.t.Fatal(err)
	}
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{})
		return err
	}), chromedp.EmulateViewport(1280, 900))
	if err != nil {
		e.t.Fatal(err)
	}
	if signedIn {
		tb.signIn(e.token)
	}
	return tb
}

func (tb *tab) onEvent(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			tb.problems = append(tb.problems, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		tb.problems = append(tb.problems, "exception: "+ev.ExceptionDetails.Text+" "+describe(ev.ExceptionDetails.Exception))
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
			tb.problems = append(tb.problems, "log "+string(ev.Entry.Level)+" ("+string(ev.Entry.Source)+"): "+ev.Entry.Text+" "+ev.Entry.URL)
		}
	case *network.EventResponseReceived:
		if ev.Type == network.ResourceTypeDocument {
			tb.docs[ev.Response.URL] = ev.Response.Headers
		}
	}
}

func describe(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	return o.Description
}

// do runs actions, failing the test on error.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v\npage:\n%s", what, err, tb.textNoFail())
	}
}

func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (tb *tab) textNoFail() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	return s
}

// html returns the page's current HTML.
func (tb *tab) html() string {
	return run(tb, "read the page", chromedp.Evaluate[string]("document.documentElement.outerHTML"))
}

func (tb *tab) text(sel string) string {
	return run(tb, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func (tb *tab) location() string { return run(tb, "location", chromedp.Location()) }

// open navigates to a UI path and checks the page.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.e.base+path))
}

func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.open("/ui/login")
	tb.do("sign in", chromedp.SetValue(chromedp.ID("f-token"), token), chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitNotPresent(chromedp.ID("f-token")))
}

// waitText waits until sel's text contains want.
func (tb *tab) waitText(sel, want string, within time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("(document.querySelector(%q)||{}).innerText||''", sel)))
		cancel()
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: text %q does not contain %q after %v\npage:\n%s", sel, got, want, within, tb.textNoFail())
		}
		ctx, cancel = context.WithTimeout(tb.ctx, time.Second)
		_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise(r => setTimeout(() => r(true), 150))`, func(p *runtime.EvaluateParams) { p.AwaitPromise = ptr(true) }))
		cancel()
	}
}

// check runs the checks every page must pass, and writes its screenshots (light and
// dark) as name-light.png and name-dark.png.
func (tb *tab) check(name string) {
	tb.t.Helper()
	loc := tb.location()
	tb.mu.Lock()
	h, ok := tb.docs[loc]
	problems := append([]string(nil), tb.problems...)
	tb.problems = nil
	tb.mu.Unlock()
	if !ok {
		tb.t.Errorf("%s: no document response seen for %s", name, loc)
	} else {
		if got := headerValue(h, "Content-Security-Policy"); got != web.CSP {
			tb.t.Errorf("%s: Content-Security-Policy = %q, want %q", name, got, web.CSP)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"} {
			if got := headerValue(h, k); got != want {
				tb.t.Errorf("%s: %s = %q, want %q", name, k, got, want)
			}
		}
	}
	for _, p := range problems {
		tb.t.Errorf("%s: %s", name, p)
	}
	if n := run(tb, "storage", chromedp.Evaluate[int]("localStorage.length + sessionStorage.length")); n != 0 {
		tb.t.Errorf("%s: %d items in localStorage and sessionStorage, want none", name, n)
	}
	dups := run(tb, "ids", chromedp.Evaluate[[]string](`(() => { const s = new Set(), d = []; for (const e of document.querySelectorAll("[id]")) { if (s.has(e.id)) d.push(e.id); s.add(e.id); } return d; })()`))
	if len(dups) > 0 {
		tb.t.Errorf("%s: ids used twice: %v", name, dups)
	}
	if n := run(tb, "h1", chromedp.Evaluate[int](`document.querySelectorAll("h1").length`)); n != 1 {
		tb.t.Errorf("%s: %d h1 elements, want 1", name, n)
	}
	tree := run(tb, "accessibility tree", chromedp.Action[*accessibility.GetFullAXTreeResult](func(ctx context.Context, t *chromedp.Target) (*accessibility.GetFullAXTreeResult, error) {
		r, err := cdp.Call(ctx, t, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		return &r, err
	}))
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		role := strings.Trim(string(n.Role.Value), `"`)
		switch role {
		case "textbox", "checkbox", "combobox", "button", "link", "searchbox", "radio", "spinbutton", "listbox", "menuitem":
		default:
			continue
		}
		if n.Name == nil || strings.Trim(string(n.Name.Value), `" `) == "" {
			tb.t.Errorf("%s: a %s without an accessible name (DOM node %d)", name, role, n.BackendDOMNodeID)
		}
	}
	tb.screenshot(name)
}

func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

var shotName = regexp.MustCompile(`[^a-z0-9-]+`)

func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	file := shotName.ReplaceAllString(strings.ToLower(tb.t.Name()+"-"+name), "-")
	var lightBG string
	for _, scheme := range []string{"light", "dark"} {
		tb.do("emulate "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}))
		for _, c := range run(tb, "contrast", chromedp.Evaluate[[]contrast](contrastJS)) {
			if c.Ratio < 4.5 {
				tb.t.Errorf("%s (%s): text of %q has a contrast of %.2f:1 against its background, want at least 4.5:1", name, scheme, c.Sel, c.Ratio)
			}
		}
		bg := run(tb, "background", chromedp.Evaluate[string]("getComputedStyle(document.body).backgroundColor"))
		if scheme == "dark" && bg == lightBG {
			tb.t.Errorf("%s: the dark scheme keeps the light background %s", name, bg)
		}
		lightBG = bg
		png := run(tb, "screenshot", chromedp.FullScreenshot(100))
		p := filepath.Join(browser.shots, file+"-"+scheme+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
	tb.t.Logf("screenshots: %s-{light,dark}.png in %s", file, browser.shots)
}

// get fetches a UI path outside the browser with the tab's session cookie, to see what a
// browser would not show as a page (an error status, say) without logging a console error.
func (tb *tab) get(path string) ubihookstest.Response {
	tb.t.Helper()
	cookies := run(tb, "cookies", chromedp.Action[[]*network.Cookie](func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.e.base + "/ui/"}})
		return r.Cookies, err
	}))
	req, err := http.NewRequest("GET", tb.e.base+path, nil)
	if err != nil {
		tb.t.Fatal(err)
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return ubihookstest.Response{Method: "GET", Path: path, Status: res.StatusCode, Header: res.Header, Body: body}
}

// contrast is the contrast ratio of one kind of text against the background it sits on.
type contrast struct {
	Sel   string  `json:"sel"`
	Ratio float64 `json:"ratio"`
}

// contrastJS measures, for the first element of each kind of text on the page, the WCAG
// contrast ratio of its colour against the first opaque background behind it.
const contrastJS = `(() => {
  const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(",").map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c; } return { r: 255, g: 255, b: 255 }; };
  const out = [];
  for (const sel of ["body", "main p", ".muted", ".hint", "main a", "th", "label", ".badge", "button", ".field-error", ".notice", ".alert", "code", ".chip", "input"]) {
    const el = document.querySelector(sel);
    if (!el) continue;
    const fg = parse(getComputedStyle(el).color), b = bg(el);
    if (!fg) continue;
    const l1 = lum(fg), l2 = lum(b);
    out.push({ sel, ratio: Math.round(((Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05)) * 100) / 100 });
  }
  return out;
})()`
