// Package importrules holds the module's import rules, the one table that says which
// package may import which, and the test that enforces them over `go list`.
//
// Dependencies point inward: cmd → adapters and the engine → service → the root package.
// Adapters (api, web, metrics, executor, delivery, the stores) never import each other;
// api and web do not know which store is behind them; only cmd wires concrete stores.
// Only the root, httpsig and client are public. The standard library is always allowed.
package importrules

// module is the module path; rules name packages relative to it ("" is the root).
const module = "github.com/ubihooks/ubihooks"

// Rule lists what the non-test code of one package may import besides the standard
// library: packages of the module (relative paths) and third-party module path prefixes.
type Rule struct {
	Module     []string
	ThirdParty []string
}

// Rules is the table, by package (relative path). A package of the module without a rule
// fails the test: a new package needs a decision.
var Rules = map[string]Rule{
	// The domain: types, validation, errors, the Store contract, event building.
	"": {},
	// Public libraries.
	"httpsig": {},
	"client":  {Module: []string{""}},
	// Leaves any layer may use.
	"internal/secret":     {},
	"internal/testsignal": {},
	"internal/startstop":  {},
	"internal/outbound":   {Module: []string{""}, ThirdParty: []string{"code.dny.dev/ssrf"}},
	// The rules and use cases.
	"internal/service": {Module: []string{"", "httpsig", "internal/secret", "internal/startstop", "internal/testsignal"}},
	// HTTP plumbing shared by api and web.
	"internal/handler": {Module: []string{""}},
	// Adapters.
	"internal/api":      {Module: []string{"", "httpsig", "internal/service", "internal/handler"}},
	"internal/web":      {Module: []string{"", "httpsig", "internal/service", "internal/handler"}},
	"internal/metrics":  {Module: []string{""}, ThirdParty: []string{"github.com/prometheus/"}},
	"internal/delivery": {Module: []string{"", "httpsig", "internal/outbound", "internal/startstop", "internal/testsignal"}},
	"internal/executor": {Module: []string{"", "internal/service", "internal/outbound", "internal/testsignal"}},
	"internal/sqlstore": {Module: []string{"", "internal/testsignal"}},
	"internal/sqlite":   {Module: []string{"", "internal/sqlstore"}, ThirdParty: []string{"modernc.org/sqlite"}},
	"internal/postgres": {Module: []string{"", "internal/sqlstore"}, ThirdParty: []string{"github.com/jackc/pgx/"}},
	// Test support: the conformance suite knows stores only through ubihooks.Store.
	"internal/storetest": {Module: []string{""}},
	// Shared test helpers (no rule allows non-test code to import them).
	"internal/ubihookstest": {Module: []string{"", "httpsig", "internal/service", "internal/secret", "internal/sqlstore", "internal/sqlite",
		"internal/testsignal"}, ThirdParty: []string{"github.com/jackc/pgx/"}},
	"internal/importrules": {},
	// The binary wires everything; examples use only the public packages.
	"cmd/ubihooks":         {Module: []string{"*"}, ThirdParty: []string{"*"}},
	"examples/modelserver": {},
	"examples/receiver":    {Module: []string{"httpsig"}},
}
