package delivery

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// echoes are the forms, by name, in which receivers commonly echo a value: as is,
// JSON-escaped (as Go escapes it, with "\/", with upper-case hex), base64 (standard and URL
// alphabets, padded and not) and percent-encoded (query and path escaping).
var echoes = []struct {
	name   string
	encode func(v string) string
}{
	{"plain", func(v string) string { return v }},
	{`JSON (\u003c, \", \\)`, jsonEscape},
	{`JSON with \/`, func(v string) string { return strings.ReplaceAll(jsonEscape(v), "/", `\/`) }},
	{`JSON with upper-case hex (\u003C)`, func(v string) string {
		return strings.NewReplacer(`\u003c`, `\u003C`, `\u003e`, `\u003E`).Replace(jsonEscape(v))
	}},
	{"base64", func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }},
	{"base64 unpadded", func(v string) string { return base64.RawStdEncoding.EncodeToString([]byte(v)) }},
	{"base64url", func(v string) string { return base64.URLEncoding.EncodeToString([]byte(v)) }},
	{"base64url unpadded", func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }},
	{"query-escaped", url.QueryEscape},
	{"path-escaped", url.PathEscape},
}

// jsonEscape returns v as Go writes it inside a JSON string.
func jsonEscape(v string) string {
	j, _ := json.Marshal(v)
	return string(j[1 : len(j)-1])
}

// TestProtectedEchoesOnEveryStore: on each store, a receiver that echoes a protected
// value in any form of echoes, whole or cut by the end of the stored excerpt
// (ubihooks.MaxAttemptBody), leaves no trace of it — no form, nor the first part of one
// at the cut — in the attempts read back from the store, nor in the tables as the
// database returns them.
func TestProtectedEchoesOnEveryStore(t *testing.T) {
	t.Parallel()
	// "???>>>" puts "/" and "+" in the standard base64 forms, "_" and "-" in the URL ones;
	// the length (53 bytes) pads them with one "=".
	secretValue := `???>>>k<&>"/\ ` + uuid.NewString() + "?+~"
	forms := protectedForms(secretValue)
	for i, f := range forms {
		for _, g := range forms[:i] {
			if g == f {
				t.Fatalf("the %s form is another's: %q", echoes[i].name, f)
			}
		}
	}
	// A case echoes a form whole, or with only its first `inside` bytes within the excerpt.
	type echoCase struct {
		name   string
		form   int
		inside int // 0: whole
	}
	var cases []echoCase
	for i, f := range echoes {
		cases = append(cases, echoCase{f.name + " whole", i, 0})
		for _, k := range []int{1, 5, len(outbound.Marker) + 3, len(forms[i]) - 1} {
			cases = append(cases, echoCase{fmt.Sprintf("%s cut after %d bytes", f.name, k), i, k})
		}
	}
	body := func(c echoCase, echoed string) string {
		if c.inside == 0 {
			return "echo " + echoed + " end"
		}
		return strings.Repeat(".", ubihooks.MaxAttemptBody-c.inside) + echoed + " and more"
	}
	// want is the excerpt stored of a case. The engine reads past the cut to see a value
	// that crosses it whole: the value is replaced, and the excerpt cut after that. When
	// the marker itself does not fit before the cut, the excerpt ends with it in place of
	// the first part of the value.
	want := func(c echoCase) string {
		if c.inside == 0 {
			return "echo " + outbound.Marker + " end"
		}
		if c.inside < len(outbound.Marker) {
			return strings.Repeat(".", ubihooks.MaxAttemptBody-len(outbound.Marker)) + outbound.Marker
		}
		w := strings.Repeat(".", ubihooks.MaxAttemptBody-c.inside) + outbound.Marker + " and more"
		return w[:min(len(w), ubihooks.MaxAttemptBody)]
	}
	// trace describes the trace of the protected value in s, if any.
	trace := func(s string) string {
		for i, f := range forms {
			if strings.Contains(s, f) {
				return fmt.Sprintf("the %s form %q", echoes[i].name, f)
			}
			for k := len(f) - 1; k > 0; k-- {
				if strings.HasSuffix(s, f[:k]) {
					return fmt.Sprintf("an end %q, the first %d bytes of the %s form", f[:k], k, echoes[i].name)
				}
			}
		}
		return ""
	}

	for name, opts := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, opts(t)...)
			rc := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
				got := r.Header.Get("X-Api-Key")
				if got != secretValue {
					e.Errorf("%s: X-Api-Key = %q, want the protected value", r.URL.Path, got)
				}
				i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/case/"))
				if err != nil || i < 0 || i >= len(cases) {
					e.Errorf("unexpected path %q", r.URL.Path)
					return
				}
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, body(cases[i], echoes[cases[i].form].encode(got)))
			})
			on := true
			hooks := make([]*ubihooks.Webhook, len(cases))
			for i := range cases {
				hooks[i] = e.hook(fmt.Sprintf("%s/case/%d", rc.URL, i), retry(false), func(in *ubihooks.WebhookCreate) {
					in.Headers = []ubihooks.HeaderInput{{Key: "X-Api-Key", Value: &secretValue, Protected: &on}}
				})
			}
			e.complete()
			e.start()

			// The attempts read back through the store ...
			for i, c := range cases {
				_, as := e.waitDone(hooks[i], 1, 10*time.Second)
				if len(as[0]) != 1 {
					t.Fatalf("%s: %d attempts, want 1", c.name, len(as[0]))
				}
				a := as[0][0]
				if a.StatusCode != http.StatusBadRequest {
					t.Errorf("%s: attempt with status %d (%s), want the receiver's 400", c.name, a.StatusCode, a.Error)
				}
				if w := want(c); a.ResponseBody != w {
					t.Errorf("%s: stored excerpt of %d bytes ending %q, want %d bytes ending %q", c.name, len(a.ResponseBody),
						a.ResponseBody[max(0, len(a.ResponseBody)-40):], len(w), w[max(0, len(w)-40):])
				}
				for what, s := range map[string]string{"excerpt": a.ResponseBody, "error": a.Error} {
					if tr := trace(s); tr != "" {
						t.Errorf("%s: the stored %s holds %s", c.name, what, tr)
					}
				}
			}

			// ... the attempts' columns as the database returns them (a delivery's first
			// attempt is kept in its row) ...
			db := e.Store.DB()
			rows, err := db.Query(`SELECT response_body, error FROM attempts
				UNION ALL SELECT first_response_body, first_error FROM deliveries WHERE first_started_at IS NOT NULL`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var respBody, errText string
				if err := rows.Scan(&respBody, &errText); err != nil {
					t.Fatal(err)
				}
				n++
				for what, s := range map[string]string{"response_body": respBody, "error": errText} {
					if tr := trace(s); tr != "" {
						t.Errorf("attempts.%s holds %s", what, tr)
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n != len(cases) {
				t.Errorf("the store has %d attempts, want %d", n, len(cases))
			}
			// ... and every column of the tables that a delivery writes.
			for _, table := range []string{"attempts", "deliveries", "events", "webhooks"} {
				dump := dumpTable(t, db, table)
				if table == "deliveries" && strings.Count(dump, outbound.Marker) < len(cases) {
					t.Errorf("the deliveries table holds %d markers, want at least one per first attempt (%d)", strings.Count(dump, outbound.Marker), len(cases))
				}
				for i, f := range forms {
					if strings.Contains(dump, f) {
						t.Errorf("table %s holds the %s form %q", table, echoes[i].name, f)
					}
				}
			}
		})
	}
}
