package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

//go:embed templates/*.html static/*
var files embed.FS

// asset is an embedded static file, served under a content-hashed URL.
type asset struct {
	body []byte
	typ  string
	hash string
}

// views holds the parsed pages and the static assets.
type views struct {
	pages  map[string]*template.Template
	assets map[string]asset
}

func loadViews() (*views, error) {
	v := &views{pages: map[string]*template.Template{}, assets: map[string]asset{}}
	statics, err := fs.ReadDir(files, "static")
	if err != nil {
		return nil, err
	}
	for _, e := range statics {
		b, err := files.ReadFile("static/" + e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		typ := "application/octet-stream"
		switch path.Ext(e.Name()) {
		case ".css":
			typ = "text/css; charset=utf-8"
		case ".js":
			typ = "text/javascript; charset=utf-8"
		case ".svg":
			typ = "image/svg+xml"
		}
		v.assets[e.Name()] = asset{body: b, typ: typ, hash: hex.EncodeToString(sum[:4])}
	}
	funcs := template.FuncMap{
		"asset": func(name string) string { return "/ui/static/" + name + "?v=" + v.assets[name].hash },
		"pe":    pathEscape,
		"short": short,
		"qe":    queryEscape,
		"time":  timeTag,
		"ago":   ago,
		"dur":   duration,
		"pct":   percent,
		"host":  ubihooks.HostOf,
		"json":  prettyJSON,
		"add":   func(a, b int) int { return a + b },
		"seq": func(n int) []int {
			s := make([]int, n)
			for i := range s {
				s[i] = i
			}
			return s
		},
		"spark":      sparkline,
		"chart":      chart,
		"eventText":  eventText,
		"fieldError": fieldError,
	}
	base, err := template.New("base").Funcs(funcs).ParseFS(files, "templates/base.html", "templates/parts.html")
	if err != nil {
		return nil, err
	}
	pages, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(path.Base(p), ".html")
		if name == "base" || name == "parts" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(files, p); err != nil {
			return nil, err
		}
		v.pages[name] = t
	}
	return v, nil
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // the active navigation entry
	Crumbs  []crumb
	Project *ubihooks.Project
	Token   *ubihooks.Token
	// Projects feed the project switcher.
	Projects []*ubihooks.Project
	Version  string
	// Origin is this server's origin as the browser sees it, for copyable commands.
	Origin string
	Done   string // a fixed message after a POST/redirect, chosen by code
	Error  *formError
	Poll   bool
	Data   any
}

type crumb struct{ Name, Href string }

// formError is an error shown at the top of a page and, when it names one, at its field.
type formError struct {
	Message string
	Field   string
}

// render writes a page with status.
func (c *call) render(status int, name string, pg *page) error {
	t := c.s.views.pages[name]
	if t == nil {
		return fmt.Errorf("web: no template %q", name)
	}
	pg.Project, pg.Token, pg.Version = c.project, c.tok, c.s.version
	pg.Origin = "http://" + c.r.Host
	if c.r.TLS != nil {
		pg.Origin = "https://" + c.r.Host
	}
	if c.r.Header.Get("X-UI-Fragment") == "" {
		pg.Projects = c.projects()
	}
	if pg.Done == "" {
		pg.Done = doneMessages[c.r.URL.Query().Get("done")]
	}
	var buf bytes.Buffer
	tmpl := "layout"
	if c.r.Header.Get("X-UI-Fragment") != "" {
		tmpl = "fragment"
	}
	if err := t.ExecuteTemplate(&buf, tmpl, pg); err != nil {
		return fmt.Errorf("web: render %s: %w", name, err)
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.WriteHeader(status)
	_, err := c.w.Write(buf.Bytes())
	return err
}

// doneMessages are the notices shown after a redirect; the query names one by code, so a
// link can never make a page say something of its choosing.
var doneMessages = map[string]string{
	"created":     "Webhook created.",
	"saved":       "Webhook saved.",
	"deleted":     "Webhook deleted.",
	"enabled":     "Webhook enabled.",
	"disabled":    "Webhook disabled.",
	"redelivered": "Delivery queued again with the same event id.",
	"sent":        "Request sent.",
	"cancelled":   "Request cancelled.",
	"signedout":   "You are signed out.",
}

// writeError renders an error page; it is handler.Options.ErrorFunc, so every error a
// route returns ends here with the status of its code and the API's message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c := &call{w: w, r: r, s: s}
	title := http.StatusText(status)
	if status == http.StatusInternalServerError && !strings.Contains(msg, "request id") {
		msg = "internal error (request id " + handler.RequestID(r.Context()) + ")"
	}
	if err := c.render(status, "error", &page{Title: title, Error: &formError{Message: msg}}); err != nil {
		s.log.Error("render error page", "err", err)
	}
}

// static serves an embedded asset; with the current hash in ?v= it may be cached for good.
func (s *Server) static(c *call) error {
	a, ok := s.views.assets[c.r.PathValue("file")]
	if !ok {
		return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such file")
	}
	h := c.w.Header()
	h.Set("Content-Type", a.typ)
	if c.r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("ETag", `"`+a.hash+`"`)
	http.ServeContent(c.w, c.r, "", time.Time{}, bytes.NewReader(a.body))
	return nil
}

// statusRefused answers a page that shows a refused form or action with its message: 200,
// as form-based sites do. The page is what the user needs either way, and a browser logs
// every 4xx document as a console error. The message is the API's, in a role="alert"
// summary and at its field; the API itself answers the same input with its 4xx.
const statusRefused = http.StatusOK
