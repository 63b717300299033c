package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// storeAPIs returns, for each store under test (SQLite, and PostgreSQL when
// UBIHOOKS_TEST_POSTGRES_URL is set), a client below /v2.1 of an API over that store with
// a token of project proj-a, and the server's log.
func storeAPIs(t *testing.T) map[string]func(t *testing.T) (*ubihookstest.API, *ubihookstest.SyncBuffer) {
	t.Helper()
	open := map[string]func(t *testing.T) *sqlstore.Store{
		"sqlite": func(t *testing.T) *sqlstore.Store { return ubihookstest.NewStore(t, sqlite.Options{}) },
	}
	if base := ubihookstest.PostgresBase(t); base != "" {
		open["postgres"] = func(t *testing.T) *sqlstore.Store {
			db, err := postgres.Open(context.Background(), ubihookstest.PostgresSchema(t, base), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db.Store
		}
	}
	out := map[string]func(t *testing.T) (*ubihookstest.API, *ubihookstest.SyncBuffer){}
	for name, o := range open {
		out[name] = func(t *testing.T) (*ubihookstest.API, *ubihookstest.SyncBuffer) {
			logs := &ubihookstest.SyncBuffer{}
			log := slog.New(slog.NewTextHandler(logs, nil))
			svc := service.New(service.Config{Store: o(t), Box: ubihookstest.NewBox(t), Logger: log})
			nt, err := svc.CreateToken(context.Background(), service.TokenCreate{Project: projA, Organization: "org-a", Name: "a"})
			if err != nil {
				t.Fatal(err)
			}
			tok := nt.Secret
			srv := httptest.NewServer(api.New(api.Config{Service: svc, Logger: log, Version: "test", RequestRetention: time.Hour}))
			t.Cleanup(srv.Close)
			return &ubihookstest.API{T: t, URL: srv.URL + api.BasePath, Token: tok}, logs
		}
	}
	return out
}

// TestPathSegmentsMustBeText: a path parameter that is not valid UTF-8 or holds a NUL
// cannot name anything, and PostgreSQL refuses to compare it with text, so it is a 400
// before authentication or a store sees it, with any token or none, on every store.
func TestPathSegmentsMustBeText(t *testing.T) {
	t.Parallel()
	for name, open := range storeAPIs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root, logs := open(t)
			root.MustDo("POST", "/projects/"+projA+"/deployments", M{"name": "dep", "input_type": "plain", "output_type": "plain"}, 201)
			paths := []string{
				"/projects/%00/webhooks",
				"/projects/%FF/webhooks",
				"/projects/a%00b",
				"/projects/" + projA + "/webhooks/%FF%FE",
				"/projects/" + projA + "/deployments/%00",
				"/projects/" + projA + "/deployments/dep/versions/%C3%28",
				"/projects/" + projA + "/deployments/dep/requests/%00",
				"/projects/" + projA + "/webhooks-tests/%FF",
			}
			for _, p := range paths {
				for _, c := range []*ubihookstest.API{root, root.As("ubh_garbage"), root.Auth("")} {
					expectError(t, c.Do("GET", p, nil, ""), http.StatusBadRequest, "valid UTF-8")
				}
			}
			// Query parameters that reach a store are held to the same rule.
			expectError(t, root.Do("GET", "/projects/"+projA+"/webhooks?labels=a:%00", nil, ""), http.StatusBadRequest, "valid UTF-8")
			expectError(t, root.Do("GET", "/projects/"+projA+"/deployments?labels=%FF:b", nil, ""), http.StatusBadRequest, "valid UTF-8")
			expectStatus(t, root.Do("GET", "/projects/"+projA+"/webhooks?object_type=%00", nil, ""), http.StatusBadRequest)
			expectStatus(t, root.Do("GET", "/projects/"+projA+"/webhooks?event=%FF", nil, ""), http.StatusBadRequest)
			expectStatus(t, root.Do("GET", "/projects/"+projA+"/deployments/dep/requests?status=%00", nil, ""), http.StatusBadRequest)
			if s := logs.String(); strings.Contains(s, "level=ERROR") {
				t.Errorf("the server logged errors:\n%s", s)
			}
		})
	}
}

// TestNamesAndLabelsMustBeText: invalid UTF-8 in a body is refused, not replaced with
// U+FFFD, and label keys and values are held to the rules of names (no control
// characters), so that both stores take the same input and list filters can match it.
func TestNamesAndLabelsMustBeText(t *testing.T) {
	t.Parallel()
	for name, open := range storeAPIs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root, logs := open(t)
			a := root.Project(projA)
			expectError(t, a.Do("POST", "/deployments", []byte("{\"name\":\"a\xffb\",\"input_type\":\"plain\",\"output_type\":\"plain\"}"), ""),
				http.StatusBadRequest, "UTF-8")
			for _, labels := range []string{`{"k\u0000":"v"}`, `{"k":"v\u0000"}`, `{"k":"a\r\nb"}`, `{"k\n":"v"}`} {
				body := []byte(`{"name":"d","input_type":"plain","output_type":"plain","labels":` + labels + `}`)
				expectError(t, a.Do("POST", "/deployments", body, ""), http.StatusBadRequest, "labels")
			}
			for _, labels := range []string{"{\"k\":\"\xff\"}", "{\"\xfe\":\"v\"}"} {
				body := []byte(`{"name":"d","input_type":"plain","output_type":"plain","labels":` + labels + `}`)
				expectError(t, a.Do("POST", "/deployments", body, ""), http.StatusBadRequest, "UTF-8")
			}
			a.MustDo("POST", "/deployments", M{"name": "d", "input_type": "plain", "output_type": "plain", "labels": M{"k": "v w", "ключ": "значение"}}, 201)
			expectError(t, a.Do("PATCH", "/deployments/d", []byte(`{"labels":{"k":"a\tb"}}`), ""), http.StatusBadRequest, "labels")
			if s := logs.String(); strings.Contains(s, "level=ERROR") {
				t.Errorf("the server logged errors:\n%s", s)
			}
		})
	}
}
