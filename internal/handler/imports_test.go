package handler_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImports: the package serves both the API and the web UI, so it may import only the
// standard library and the root package; anything else (api's routes, a store, the
// service) would tie one of them to the other.
func TestImports(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		seen++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			root := path == "github.com/ubihooks/ubihooks"
			std := !strings.Contains(strings.SplitN(path, "/", 2)[0], ".")
			if !root && !std {
				t.Errorf("%s imports %s; handler may import only the standard library and github.com/ubihooks/ubihooks", name, path)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no source files read")
	}
}
