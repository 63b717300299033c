package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pkg is what the check needs of `go list -json`.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// check returns one line per import that rules do not allow, and per package without a
// rule. Test files are not checked: tests may import whatever helps them.
func check(pkgs []pkg, rules map[string]Rule) []string {
	var bad []string
	for _, p := range pkgs {
		if p.Standard || (p.ImportPath != module && !strings.HasPrefix(p.ImportPath, module+"/")) {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		r, ok := rules[name]
		if !ok {
			bad = append(bad, "package "+display(name)+" has no import rule (add it to Rules)")
			continue
		}
		for _, imp := range p.Imports {
			if !allowed(r, imp) {
				bad = append(bad, display(name)+" imports "+imp+", which its rule does not allow")
			}
		}
	}
	return bad
}

func allowed(r Rule, imp string) bool {
	if imp == module || strings.HasPrefix(imp, module+"/") {
		rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
		return slices.Contains(r.Module, "*") || slices.Contains(r.Module, rel)
	}
	if first, _, _ := strings.Cut(imp, "/"); !strings.Contains(first, ".") {
		return true // the standard library
	}
	for _, p := range r.ThirdParty {
		if p == "*" || imp == strings.TrimSuffix(p, "/") || strings.HasPrefix(imp, p) {
			return true
		}
	}
	return false
}

func display(name string) string {
	if name == "" {
		return "the root package"
	}
	return name
}

func TestImportRules(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list packages: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Standard,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	for _, b := range check(pkgs, Rules) {
		t.Error(b)
	}
}

// The check itself must catch what it is for.
func TestCheck(t *testing.T) {
	t.Parallel()
	rules := map[string]Rule{
		"":                  {},
		"internal/api":      {Module: []string{"", "internal/service"}},
		"internal/sqlite":   {Module: []string{"internal/sqlstore"}, ThirdParty: []string{"modernc.org/sqlite"}},
		"internal/sqlstore": {},
		"cmd/x":             {Module: []string{"*"}, ThirdParty: []string{"*"}},
	}
	m := func(rel string) string { return strings.TrimSuffix(module+"/"+rel, "/") }
	tests := []struct {
		name string
		pkg  pkg
		want int
	}{
		{"stdlib only", pkg{ImportPath: m(""), Imports: []string{"net/http", "crypto/sha1"}}, 0},
		{"root imports an adapter", pkg{ImportPath: m(""), Imports: []string{m("internal/sqlstore")}}, 1},
		{"api imports a store", pkg{ImportPath: m("internal/api"), Imports: []string{m("internal/service"), m("internal/sqlstore")}}, 1},
		{"allowed third party", pkg{ImportPath: m("internal/sqlite"), Imports: []string{"modernc.org/sqlite/lib", m("internal/sqlstore")}}, 0},
		{"third party not allowed", pkg{ImportPath: m("internal/api"), Imports: []string{"github.com/google/uuid"}}, 1},
		{"wildcard", pkg{ImportPath: m("cmd/x"), Imports: []string{m("internal/sqlite"), "github.com/jackc/pgx/v5"}}, 0},
		{"no rule", pkg{ImportPath: m("internal/new")}, 1},
		{"other modules are not checked", pkg{ImportPath: "example.com/other", Imports: []string{m("internal/sqlite")}}, 0},
	}
	for _, tt := range tests {
		if got := check([]pkg{tt.pkg}, rules); len(got) != tt.want {
			t.Errorf("%s: %d violations %q, want %d", tt.name, len(got), got, tt.want)
		}
	}
}
