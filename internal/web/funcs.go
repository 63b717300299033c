package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
)

// pathEscape escapes a name for one path segment: names may hold "/", spaces or "<".
func pathEscape(s string) string { return url.PathEscape(s) }

func queryEscape(s string) string { return url.QueryEscape(s) }

// timeTag renders a time as <time>, in UTC; the script shows it in the reader's zone.
func timeTag(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s">%s</time>`,
		template.HTMLEscapeString(t.Format(time.RFC3339Nano)), template.HTMLEscapeString(t.Format("2006-01-02 15:04:05 UTC"))))
}

// ago is a coarse relative time ("3 min ago").
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + roughly(-d)
	case d < 5*time.Second:
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// duration renders a duration in milliseconds, or seconds when long.
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 ms"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d%time.Second == 0:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < 10*time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// percent renders a success rate; a negative rate means nothing finished.
func percent(r float64) string {
	if r < 0 {
		return "—"
	}
	if r == 1 {
		return "100 %"
	}
	return fmt.Sprintf("%.1f %%", r*100)
}

// prettyJSON indents JSON for display; it is escaped by the template like any text.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// eventDescriptions are the how-to's sentences for the event kinds.
var eventDescriptions = map[string]string{
	"started":   "triggers when a request starts",
	"completed": "triggers when a request completes successfully",
	"failed":    "triggers when a request fails",
	"finished":  "triggers when a request is finished (cancelled, successful or failed)",
}

func eventText(e ubihooks.EventType) string { return eventDescriptions[e.Kind()] }

// fieldError returns the message of a form error when it names field.
func fieldError(e *formError, field string) string {
	if e == nil || e.Field != field {
		return ""
	}
	return e.Message
}

// errorField finds the form field that a service message names: messages start with the
// field's API name ("timeout must be …", "headers[2] (X-Key): …", "labels: …").
func errorField(msg string) string {
	end := strings.IndexAny(msg, " :[(")
	if end < 0 {
		return ""
	}
	switch f := msg[:end]; f {
	case "name", "description", "object_type", "object_name", "version", "event", "url", "headers", "timeout", "labels", "retry", "include_result", "enabled", "status", "input":
		return f
	}
	return ""
}

// short abbreviates an id for a narrow table; the full id stays in the link's title.
func short(id string) string {
	if len(id) <= 13 {
		return id
	}
	return id[:8] + "…" + id[len(id)-4:]
}
