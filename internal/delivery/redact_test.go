package delivery

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	headers := []ubihooks.Header{{Key: "A", Value: "alpha", Protected: true}, {Key: "B", Value: "beta"}, {Key: "C", Protected: true}}
	tests := []struct{ body, err, wantBody, wantErr string }{
		{"alpha and beta", "", "[redacted] and beta", ""},
		{"alphaalpha", "saw alpha", "[redacted][redacted]", "saw [redacted]"},
		{"nothing", "nothing", "nothing", "nothing"},
	}
	r := redactor(headers)
	for _, tt := range tests {
		gotBody, gotErr := r.Redact(tt.body), r.Redact(tt.err)
		if gotBody != tt.wantBody || gotErr != tt.wantErr {
			t.Errorf("redact(%q, %q) = %q, %q; want %q, %q", tt.body, tt.err, gotBody, gotErr, tt.wantBody, tt.wantErr)
		}
	}
}

// TestProtectedHeader: a protected header's value reaches the receiver but is stored
// nowhere (attempts, response bodies echoing it, the database file) and logged nowhere.
func TestProtectedHeader(t *testing.T) {
	t.Parallel()
	e := setup(t)
	secretValue := "s3cr3t-" + uuid.NewString()
	rc := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Api-Key")
		w.Header().Set("X-Echo", got)
		if a.N == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "key %s rejected", got)
			return
		}
		fmt.Fprintf(w, "ok, key was %s", got)
	})
	on, off := true, false
	plain := "visible-value"
	w := e.hook(rc.URL+"/", retry(true), func(in *ubihooks.WebhookCreate) {
		in.Headers = []ubihooks.HeaderInput{{Key: "X-Api-Key", Value: &secretValue, Protected: &on}, {Key: "X-Plain", Value: &plain, Protected: &off}}
	})
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	d, attempts := ds[0], as[0]
	if d.Status != ubihooks.DeliverySucceeded || len(attempts) != 2 {
		t.Fatalf("delivery %s with %d attempts, want succeeded after 2", d.Status, len(attempts))
	}
	for _, a := range rc.Arrivals() {
		if got := a.Header.Get("X-Api-Key"); got != secretValue {
			t.Errorf("arrival %d: X-Api-Key = %q, want the protected value", a.N, got)
		}
		if got := a.Header.Get("X-Plain"); got != plain {
			t.Errorf("arrival %d: X-Plain = %q", a.N, got)
		}
	}
	for _, a := range attempts {
		if strings.Contains(a.ResponseBody, secretValue) || strings.Contains(a.Error, secretValue) {
			t.Errorf("attempt %d stores the protected value: body %q error %q", a.Number, a.ResponseBody, a.Error)
		}
		if !strings.Contains(a.ResponseBody, "[redacted]") {
			t.Errorf("attempt %d body %q: want the echoed value replaced by [redacted]", a.Number, a.ResponseBody)
		}
	}
	stored, err := e.Service.GetWebhook(context.Background(), e.Project.ID, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, hs := range [][]ubihooks.Header{d.Headers, stored.Headers} {
		for _, h := range hs {
			if h.Value == secretValue || strings.Contains(h.String(), secretValue) {
				t.Errorf("stored header %s carries the protected value", h.Key)
			}
			if h.Key == "X-Api-Key" && (!h.Protected || len(h.Sealed) == 0 || h.Value != "") {
				t.Errorf("stored protected header: protected %v, sealed %d bytes, value %q", h.Protected, len(h.Sealed), h.Value)
			}
		}
	}

	// The tables, as the database returns them ...
	db := e.Store.DB()
	for _, table := range []string{"webhooks", "deliveries", "attempts", "events"} {
		dump := dumpTable(t, db, table)
		if !strings.Contains(dump, w.ID) && table != "attempts" && table != "events" {
			t.Errorf("table %s dump does not contain the webhook (dump broken?)", table)
		}
		if strings.Contains(dump, secretValue) {
			t.Errorf("table %s contains the protected value", table)
		}
		if table == "webhooks" && !strings.Contains(dump, plain) {
			t.Errorf("webhooks table lacks the plain header value; the dump is not what it seems")
		}
	}
	// ... and the bytes of the database files (main file and WAL).
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(e.Path), "*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	sawPlain := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("%s contains the protected value", filepath.Base(f))
		}
		sawPlain = sawPlain || bytes.Contains(b, []byte(plain))
	}
	if !sawPlain {
		t.Errorf("no database file contains the plain header value; the byte scan is not looking at the data")
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "delivery attempt failed") {
		t.Errorf("logs lack the failed attempt; is the capture working?\n%s", logs)
	}
	if strings.Contains(logs, secretValue) {
		t.Errorf("logs contain the protected value:\n%s", logs)
	}
}

func dumpTable(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				b.Write(bs)
			} else {
				fmt.Fprint(&b, v)
			}
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestProtectedHeaderEncodedEchoes: a receiver that echoes a protected value JSON-escaped,
// base64-encoded or percent-encoded, or across the cut of the stored excerpt, leaves none
// of these forms, nor a first part of one at the cut, in the attempts read back from the
// store.
func TestProtectedHeaderEncodedEchoes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	secretValue := `k<&>"/\ ` + uuid.NewString() + "?+~"
	forms := protectedForms(secretValue)
	rc := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Api-Key")
		w.WriteHeader(http.StatusBadRequest)
		if r.URL.Path == "/forms" {
			io.WriteString(w, strings.Join(protectedForms(got), " | "))
			return
		}
		// The echo begins 5 bytes before the cut of the excerpt.
		io.WriteString(w, strings.Repeat(".", ubihooks.MaxAttemptBody-5)+got+" and more")
	})
	on := true
	header := func(in *ubihooks.WebhookCreate) {
		in.Headers = []ubihooks.HeaderInput{{Key: "X-Api-Key", Value: &secretValue, Protected: &on}}
	}
	encoded, cut := e.hook(rc.URL+"/forms", retry(false), header), e.hook(rc.URL+"/cut", retry(false), header)
	e.complete()
	e.start()
	for _, w := range []*ubihooks.Webhook{encoded, cut} {
		_, as := e.waitDone(w, 1, 10*time.Second)
		if len(as[0]) != 1 {
			t.Fatalf("%s: %d attempts, want 1", w.URL, len(as[0]))
		}
		a := as[0][0]
		if w == encoded && a.ResponseBody != strings.Repeat("[redacted] | ", len(forms)-1)+"[redacted]" {
			t.Errorf("%s: stored excerpt %q, want every form redacted", w.URL, a.ResponseBody)
		}
		if want := strings.Repeat(".", ubihooks.MaxAttemptBody-10) + "[redacted]"; w == cut && a.ResponseBody != want {
			t.Errorf("%s: stored excerpt of %d bytes ending %q, want %d bytes ending %q", w.URL, len(a.ResponseBody),
				a.ResponseBody[max(0, len(a.ResponseBody)-20):], len(want), want[len(want)-20:])
		}
		for _, f := range forms {
			if strings.Contains(a.ResponseBody, f) || strings.Contains(a.Error, f) {
				t.Errorf("%s: attempt stores the protected value as %q: body %q error %q", w.URL, f, a.ResponseBody, a.Error)
			}
			for k := len(f) - 1; k > 0; k-- {
				if strings.HasSuffix(a.ResponseBody, f[:k]) {
					t.Errorf("%s: stored excerpt ends with %q, the first %d bytes of the protected value as %q", w.URL, f[:k], k, f)
				}
			}
		}
	}
}

// protectedForms are the forms of echoes of a value v.
func protectedForms(v string) []string {
	forms := make([]string, len(echoes))
	for i, f := range echoes {
		forms[i] = f.encode(v)
	}
	return forms
}
