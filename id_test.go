package ubihooks

import (
	"strings"
	"testing"
	"time"

	guuid "github.com/google/uuid"
)

// The event ids of requests already stored were minted with github.com/google/uuid; the
// root's own implementation must give every request the same event ids.
func TestEventIDMatchesNameBasedUUID(t *testing.T) {
	t.Parallel()
	ns := guuid.MustParse("6f1c2a8e-5d0b-4c7e-9a53-1f0e8b6d2c41")
	v7 := guuid.Must(guuid.NewV7()).String()
	for _, req := range []string{
		"00000000-0000-0000-0000-000000000000", "not-a-uuid", "", v7, strings.ToUpper(v7), "{" + v7 + "}",
		"urn:uuid:" + v7, strings.ReplaceAll(v7, "-", ""), guuid.NewString(), "urn:uuid:" + guuid.NewString(),
	} {
		for _, et := range []EventType{EventDeploymentStarted, EventPipelineFinished} {
			want := guuid.NewSHA1(ns, []byte(req+"/"+string(et)))
			if r, err := guuid.Parse(req); err == nil && r.Version() == 7 {
				copy(want[:6], r[:6])
			}
			if got := EventID(req, et); got != want.String() {
				t.Errorf("EventID(%q, %s) = %s, want %s", req, et, got, want)
			}
		}
	}
}

func TestNameIDMatchesNameBasedUUID(t *testing.T) {
	t.Parallel()
	ns := "0d8f4b3a-6a3e-4d43-a2f4-7b2f1c9e5a10"
	for _, name := range []string{"", "v1/o/step", "x/a/dest"} {
		if got, want := NameID(ns, name), guuid.NewSHA1(guuid.MustParse(ns), []byte(name)).String(); got != want {
			t.Errorf("NameID(%s, %q) = %s, want %s", ns, name, got, want)
		}
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	before := time.Now().UnixMilli()
	prev := ""
	seen := map[string]bool{}
	for range 10000 {
		id := NewID()
		u, err := guuid.Parse(id)
		if err != nil {
			t.Fatalf("NewID() = %q: %v", id, err)
		}
		if u.Version() != 7 || u.Variant() != guuid.RFC4122 {
			t.Fatalf("NewID() = %s: version %d, variant %v; want 7, RFC 4122", id, u.Version(), u.Variant())
		}
		sec, nsec := u.Time().UnixTime()
		if ms := sec*1000 + nsec/1e6; ms < before-1 || ms > time.Now().UnixMilli()+5 {
			t.Fatalf("NewID() = %s: time %d ms, want about now (%d)", id, ms, before)
		}
		if id <= prev || seen[id] {
			t.Fatalf("NewID() = %s after %s: want strictly increasing and unique", id, prev)
		}
		seen[id], prev = true, id
	}
}
