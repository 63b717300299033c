package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The packaging files (Dockerfile, docker-compose.yml, the systemd unit and its environment
// file) are checked against the program itself: the flags and environment variables they
// name, the command lines they run and how they fit together. No container runtime or init
// system is needed.

const (
	dockerfilePath   = "Dockerfile"
	dockerignorePath = ".dockerignore"
	composePath      = "docker-compose.yml"
	unitPath         = "packaging/systemd/ubihooks.service"
	envFilePath      = "packaging/systemd/ubihooks.env"
)

// readRepoFile reads a file by its path from the repository's root (tests run in cmd/ubihooks).
func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// envOf is a Getenv over a map.
func envOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// envName is the environment variable of a flag, by convention: UBIHOOKS_ and the flag's
// name in upper case with "-" as "_".
func envName(flagName string) string {
	return "UBIHOOKS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// surface is what a command offers: its flags (from its -h output) and the environment
// variables it reads.
type surface struct {
	flags, envs map[string]bool
}

// commandSurface runs `ubihooks <cmd> -h` and records the flags it lists and the
// environment variables it asks for.
func commandSurface(t *testing.T, cmd ...string) surface {
	t.Helper()
	s := surface{flags: map[string]bool{}, envs: map[string]bool{}}
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string { s.envs[k] = true; return "" }}
	if err := m.Run(context.Background(), append(slices.Clone(cmd), "-h")); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ubihooks %s -h: %v, want flag.ErrHelp", strings.Join(cmd, " "), err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "  -") {
			s.flags[strings.TrimPrefix(strings.Fields(line)[0], "-")] = true
		}
	}
	if len(s.flags) == 0 {
		t.Fatalf("ubihooks %s -h lists no flags:\n%s", strings.Join(cmd, " "), out.String())
	}
	return s
}

// parseServe parses serve's command line as serve does, with env as the environment, and
// checks the values serve checks before it listens.
func parseServe(args []string, env map[string]string) (serveConfig, error) {
	var c serveConfig
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: envOf(env)}
	if err := m.parse(m.serveFlags("serve", &c), args); err != nil {
		return c, err
	}
	if _, err := c.logger(io.Discard); err != nil {
		return c, err
	}
	if c.MaxBodyMemoryMB < 1 {
		return c, fmt.Errorf("--max-body-memory %d is below 1", c.MaxBodyMemoryMB)
	}
	if _, err := parseAllowNetworks(c.AllowNetworks); err != nil {
		return c, err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("--listen %q: %v", c.Listen, err)
	}
	return c, nil
}

// TestPackagingServeFlagsHaveEnv: every flag of serve reads UBIHOOKS_<FLAG>, and a value
// there becomes the flag's default, so that every setting can come from the environment
// (what the container image, compose and the systemd environment file rely on).
func TestPackagingServeFlagsHaveEnv(t *testing.T) {
	t.Parallel()
	var base serveConfig
	flags := (&Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: envOf(nil)}).serveFlags("serve", &base)
	n := 0
	flags.VisitAll(func(f *flag.Flag) {
		n++
		env := envName(f.Name)
		if !strings.Contains(f.Usage, "($"+env+")") {
			t.Errorf("--%s: usage %q does not name $%s", f.Name, f.Usage, env)
		}
		// A value in the variable that differs from the default, of the flag's type.
		var value string
		switch v := f.Value.(flag.Getter).Get().(type) {
		case string:
			value = v + "-from-env"
		case time.Duration:
			value = (v + 7*time.Second).String()
		case int:
			value = strconv.Itoa(v + 7)
		case bool:
			value = strconv.FormatBool(!v)
		default:
			t.Errorf("--%s: a flag of type %T, which this test does not know", f.Name, v)
			return
		}
		var c serveConfig
		m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: envOf(map[string]string{env: value})}
		got := m.serveFlags("serve", &c).Lookup(f.Name)
		if got == nil {
			t.Fatalf("--%s is not defined the second time", f.Name)
		}
		if got.Value.String() != value {
			t.Errorf("$%s=%s: --%s is %v, want %s: the flag does not read its environment variable", env, value, f.Name, got.Value, value)
		}
	})
	if n < 15 {
		t.Errorf("serve has %d flags, fewer than the documented ones: is this the serve flag set?", n)
	}
}

// commandRe finds ubihooks command lines in any text, comments included.
var commandRe = regexp.MustCompile(`(?:^|[\s/"'\x60])ubihooks\s+(serve|migrate|backup|token|keys|listen|bench)\b([^#;&|\x60\n]*)`)

// ubihooksEnvRe finds the names of ubihooks' environment variables.
var ubihooksEnvRe = regexp.MustCompile(`\bUBIHOOKS_[A-Z0-9_]+`)

// commandLines returns the ubihooks command lines (without the program) that a packaging
// file runs or shows, wherever it is: Dockerfile ENTRYPOINT and CMD, compose commands,
// systemd ExecStart, and "ubihooks <command> …" anywhere, comments included.
func commandLines(t *testing.T, name, text string) [][]string {
	t.Helper()
	var cmds [][]string
	switch name {
	case dockerfilePath:
		d := parseDockerfile(t, text)
		cmds = append(cmds, d.argv())
	case composePath:
		for _, v := range parseYAMLLines(text) {
			if strings.HasSuffix(v.path, ".command") {
				cmds = append(cmds, composeCommand(t, v.value))
			}
		}
	case unitPath:
		argv := strings.Fields(parseUnit(text).get("Service", "ExecStart"))
		if len(argv) > 0 {
			cmds = append(cmds, argv[1:])
		}
	}
	for _, m := range commandRe.FindAllStringSubmatch(text, -1) {
		argv := append([]string{m[1]}, strings.Fields(m[2])...)
		if !slices.ContainsFunc(cmds, func(c []string) bool { return slices.Equal(c, argv) }) {
			cmds = append(cmds, argv)
		}
	}
	return cmds
}

// packagingDocs names the Packaging section of docs/operations.md, which shows how to run
// the packaging files.
const packagingDocs = "docs/operations.md#packaging"

// packagingSection is the text of the Packaging section of docs/operations.md.
func packagingSection(t *testing.T) string {
	t.Helper()
	doc := readRepoFile(t, "docs/operations.md")
	_, section, ok := strings.Cut(doc, "\n## Packaging\n")
	if !ok {
		t.Fatal("docs/operations.md has no ## Packaging section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}

// TestPackagingComposeNamesRealFlags: every flag and every UBIHOOKS_* variable that the
// Dockerfile, docker-compose.yml, the systemd unit, its environment file and the docs'
// Packaging section name exists: a flag of the ubihooks command it is given to, a variable
// that serve or migrate reads. And the environment file lists every variable of serve.
func TestPackagingComposeNamesRealFlags(t *testing.T) {
	t.Parallel()
	surfaces := map[string]surface{
		"serve":   commandSurface(t, "serve"),
		"migrate": commandSurface(t, "migrate"),
		"backup":  commandSurface(t, "backup"),
		"listen":  commandSurface(t, "listen"),
		"bench":   commandSurface(t, "bench"),
	}
	merge := func(cmds ...[]string) surface {
		s := surface{flags: map[string]bool{}, envs: map[string]bool{}}
		for _, cmd := range cmds {
			c := commandSurface(t, cmd...)
			for k := range c.flags {
				s.flags[k] = true
			}
		}
		return s
	}
	surfaces["token"] = merge([]string{"token", "create"}, []string{"token", "list"}, []string{"token", "revoke"})
	surfaces["keys"] = merge([]string{"keys", "show"}, []string{"keys", "rotate"})
	envs := map[string]bool{}
	for _, cmd := range []string{"serve", "migrate"} {
		for k := range surfaces[cmd].envs {
			envs[k] = true
		}
	}

	for _, name := range []string{dockerfilePath, composePath, unitPath, envFilePath, packagingDocs} {
		var text string
		if name == packagingDocs {
			text = packagingSection(t)
		} else {
			text = readRepoFile(t, name)
		}
		refs := ubihooksEnvRe.FindAllString(text, -1)
		if len(refs) == 0 {
			t.Errorf("%s names no UBIHOOKS_* variable", name)
		}
		for _, env := range refs {
			if !envs[env] {
				t.Errorf("%s: $%s is read by neither serve nor migrate", name, env)
			}
		}
		for _, argv := range commandLines(t, name, text) {
			if len(argv) == 0 {
				t.Errorf("%s: an empty ubihooks command line", name)
				continue
			}
			s, ok := surfaces[argv[0]]
			if !ok {
				t.Errorf("%s: ubihooks %s: no such command", name, strings.Join(argv, " "))
				continue
			}
			for _, arg := range argv[1:] {
				if arg == "--" {
					break
				}
				if !strings.HasPrefix(arg, "-") || arg == "-" {
					continue
				}
				f, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
				if !s.flags[f] && f != "h" && f != "help" {
					t.Errorf("%s: ubihooks %s: %s has no flag --%s", name, strings.Join(argv, " "), argv[0], f)
				}
			}
		}
	}

	// The environment file is the reference of the settings: it lists every one of serve.
	listed := map[string]bool{}
	for _, ex := range envFileExamples(t, readRepoFile(t, envFilePath)) {
		listed[ex[0]] = true
	}
	for env := range surfaces["serve"].envs {
		if !listed[env] {
			t.Errorf("%s does not list $%s, which serve reads", envFilePath, env)
		}
	}
}

// unit is a systemd unit file: its settings by section, in order (a key may repeat).
type unit map[string][][2]string

func parseUnit(text string) unit {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, _ := strings.Cut(line, "=")
			u[section] = append(u[section], [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return u
}

// get is the last value of key in section (a later setting wins), "" if none.
func (u unit) get(section, key string) string {
	v := ""
	for _, kv := range u[section] {
		if kv[0] == key {
			v = kv[1]
		}
	}
	return v
}

// all is every value of key in section.
func (u unit) all(section, key string) []string {
	var vs []string
	for _, kv := range u[section] {
		if kv[0] == key {
			vs = append(vs, kv[1])
		}
	}
	return vs
}

// envFileExamples returns the variable assignments of an environment file, commented out
// or not ("#UBIHOOKS_X=value"), with their values.
func envFileExamples(t *testing.T, text string) [][2]string {
	t.Helper()
	var exs [][2]string
	re := regexp.MustCompile(`^#?\s*(UBIHOOKS_[A-Z0-9_]+)=(.*)$`)
	for _, line := range strings.Split(text, "\n") {
		if m := re.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			exs = append(exs, [2]string{m[1], m[2]})
		}
	}
	if len(exs) == 0 {
		t.Fatal("the environment file has no UBIHOOKS_* setting")
	}
	return exs
}

// TestPackagingSystemdExecStartParses: the unit's ExecStart, with the unit's environment,
// is a serve command line that serve accepts; its database is in the state directory (the
// one place the hardened service may write); every example value of the environment file
// is accepted too; and the unit is hardened and restarts.
func TestPackagingSystemdExecStartParses(t *testing.T) {
	t.Parallel()
	u := parseUnit(readRepoFile(t, unitPath))
	execStart := u.all("Service", "ExecStart")
	if len(execStart) != 1 {
		t.Fatalf("ExecStart: %q, want one command", execStart)
	}
	argv := strings.Fields(execStart[0])
	if strings.ContainsAny(execStart[0], `"'\$%`) {
		t.Fatalf("ExecStart=%s: quotes, escapes or substitutions, which this test does not read", execStart[0])
	}
	if len(argv) < 2 || argv[0] != "/usr/local/bin/ubihooks" || argv[1] != "serve" {
		t.Fatalf("ExecStart=%s, want /usr/local/bin/ubihooks serve [flags]", execStart[0])
	}
	env := map[string]string{}
	for _, assignments := range u.all("Service", "Environment") {
		for _, a := range strings.Fields(assignments) {
			k, v, ok := strings.Cut(a, "=")
			if !ok || strings.ContainsAny(a, `"'\$%`) {
				t.Fatalf("Environment=%s: not a plain KEY=VALUE list", assignments)
			}
			env[k] = v
		}
	}
	c, err := parseServe(argv[2:], env)
	if err != nil {
		t.Fatalf("ubihooks %s with %v: %v", strings.Join(argv[1:], " "), env, err)
	}

	state := u.get("Service", "StateDirectory")
	if state == "" || !strings.HasPrefix(c.Database, "/var/lib/"+state+"/") {
		t.Errorf("the database is %s, outside the state directory /var/lib/%s (StateDirectory=%s): ProtectSystem=strict makes it read-only", c.Database, state, state)
	}
	if wd := u.get("Service", "WorkingDirectory"); wd != "" && wd != "/var/lib/"+state {
		t.Errorf("WorkingDirectory=%s, want the state directory /var/lib/%s or none", wd, state)
	}
	if user := u.get("Service", "User"); user == "" || user == "root" || user == "0" {
		if u.get("Service", "DynamicUser") != "yes" {
			t.Errorf("User=%q: the service runs as root", user)
		}
	}
	// serve does not notify systemd (no sd_notify): Type=notify would never become active.
	if typ := u.get("Service", "Type"); typ != "simple" && typ != "exec" {
		t.Errorf("Type=%s, want simple or exec", typ)
	}
	for key, want := range map[string]string{
		"Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes",
	} {
		if got := u.get("Service", key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	stop := u.get("Service", "TimeoutStopSec")
	if _, err := strconv.Atoi(stop); err == nil {
		stop += "s"
	}
	if d, err := time.ParseDuration(stop); err != nil || d <= c.ShutdownTimeout {
		t.Errorf("TimeoutStopSec=%s: want a duration above the shutdown timeout %s, or systemd kills a graceful shutdown", stop, c.ShutdownTimeout)
	}
	if got := u.get("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%s, want multi-user.target", got)
	}

	// The environment file: the unit reads the one shipped (optional: "-"), and each example
	// in it is a value serve accepts, over the unit's environment (as systemd overrides it).
	ef := u.get("Service", "EnvironmentFile")
	if ef != "-/etc/ubihooks/"+path.Base(envFilePath) {
		t.Errorf("EnvironmentFile=%s, want -/etc/ubihooks/%s (the file shipped, optional)", ef, path.Base(envFilePath))
	}
	for _, ex := range envFileExamples(t, readRepoFile(t, envFilePath)) {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e[ex[0]] = ex[1]
		if _, err := parseServe(argv[2:], e); err != nil {
			t.Errorf("%s: %s=%s: %v", envFilePath, ex[0], ex[1], err)
		}
	}
}

// dockerfile is the instructions of a Dockerfile, by stage.
type dockerfile struct {
	args   map[string]string // global ARGs (before the first FROM) and their defaults
	stages []dockerStage
}

type dockerStage struct {
	image, name string
	instrs      [][2]string // instruction (upper case) and its arguments
}

func parseDockerfile(t *testing.T, text string) dockerfile {
	t.Helper()
	d := dockerfile{args: map[string]string{}}
	var logical []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical = append(logical, cur+trimmed)
		cur = ""
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return d.args[k] })
	}
	for _, l := range logical {
		if l == "" {
			continue
		}
		ins, rest, _ := strings.Cut(l, " ")
		ins, rest = strings.ToUpper(ins), strings.TrimSpace(rest)
		switch {
		case ins == "FROM":
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") { // --platform=…
				f = f[1:]
			}
			if len(f) != 1 && (len(f) != 3 || !strings.EqualFold(f[1], "AS")) {
				t.Fatalf("Dockerfile: FROM %s: want FROM [--flags] IMAGE [AS NAME]", rest)
			}
			st := dockerStage{image: expand(f[0])}
			if len(f) == 3 {
				st.name = f[2]
			}
			d.stages = append(d.stages, st)
		case len(d.stages) == 0 && ins == "ARG":
			k, v, _ := strings.Cut(rest, "=")
			d.args[k] = v
		case len(d.stages) == 0:
			t.Fatalf("Dockerfile: %s before the first FROM", ins)
		default:
			st := &d.stages[len(d.stages)-1]
			st.instrs = append(st.instrs, [2]string{ins, rest})
		}
	}
	if len(d.stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return d
}

func (s dockerStage) all(ins string) []string {
	var vs []string
	for _, i := range s.instrs {
		if i[0] == ins {
			vs = append(vs, i[1])
		}
	}
	return vs
}

func (s dockerStage) last(ins string) string {
	vs := s.all(ins)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func (d dockerfile) final() dockerStage { return d.stages[len(d.stages)-1] }

// jsonArgs reads an exec-form (JSON array) ENTRYPOINT, CMD or VOLUME; "" if s is not one.
func jsonArgs(s string) []string {
	var a []string
	if json.Unmarshal([]byte(s), &a) != nil {
		return nil
	}
	return a
}

// argv is the command line after the program that the final image runs by default.
func (d dockerfile) argv() []string {
	ep := jsonArgs(d.final().last("ENTRYPOINT"))
	if len(ep) == 0 {
		return nil
	}
	return append(ep[1:], jsonArgs(d.final().last("CMD"))...)
}

// env is the final stage's ENV (KEY=VALUE forms, several per instruction).
func (s dockerStage) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range s.all("ENV") {
		for _, a := range strings.Fields(e) {
			k, v, ok := strings.Cut(a, "=")
			if !ok || strings.ContainsAny(v, `"'$`) {
				t.Fatalf("ENV %s: not a plain KEY=VALUE list", e)
			}
			env[k] = v
		}
	}
	return env
}

// TestPackagingDockerfile: the image builds a static binary (CGO_ENABLED=0) with the Go
// that go.mod asks for, runs it as a non-root user that owns the volume holding the
// database, serves on every interface at the exposed port, and starts serve with a command
// line serve accepts. The build context leaves out secrets and databases, not sources.
func TestPackagingDockerfile(t *testing.T) {
	t.Parallel()
	d := parseDockerfile(t, readRepoFile(t, dockerfilePath))
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile has %d stage, want a build stage and a final one", len(d.stages))
	}

	// The build stage: golang at go.mod's version, a static build of cmd/ubihooks.
	build := d.stages[0]
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	tag, ok := strings.CutPrefix(build.image, "golang:")
	if v, _, _ := strings.Cut(tag, "-"); !ok || v != goLine[1] {
		t.Errorf("build stage FROM %s, want golang:%s… (go.mod's go line: golang images do not fetch another toolchain)", build.image, goLine[1])
	}
	var out string
	for _, run := range build.all("RUN") {
		if !strings.Contains(run, "go build") {
			continue
		}
		if !strings.Contains(run, "CGO_ENABLED=0") {
			t.Errorf("RUN %s: without CGO_ENABLED=0 the binary may need a C library the distroless static image does not have", run)
		}
		if !strings.Contains(run, "./cmd/ubihooks") {
			t.Errorf("RUN %s does not build ./cmd/ubihooks", run)
		}
		f := strings.Fields(run)
		if i := slices.Index(f, "-o"); i >= 0 && i+1 < len(f) {
			out = f[i+1]
		}
	}
	if out == "" {
		t.Fatal("the build stage has no RUN … go build -o FILE")
	}

	// The final stage: non-root, the binary at the entrypoint.
	final := d.final()
	uid := "65532" // the user of distroless :nonroot images
	if user := final.last("USER"); user != "" {
		uid, _, _ = strings.Cut(user, ":")
	} else if !strings.HasSuffix(final.image, ":nonroot") {
		t.Errorf("final stage FROM %s with no USER: it runs as root", final.image)
	}
	if uid == "root" || uid == "0" {
		t.Errorf("USER %s: the image runs as root", final.last("USER"))
	}
	ep := jsonArgs(final.last("ENTRYPOINT"))
	if len(ep) == 0 {
		t.Fatalf("ENTRYPOINT %s: want the exec form, [\"/path/of/ubihooks\"]", final.last("ENTRYPOINT"))
	}
	installed := ""
	for _, cp := range final.all("COPY") {
		f := strings.Fields(cp)
		if len(f) >= 3 && slices.Contains(f, "--from="+build.name) && f[len(f)-2] == out {
			installed = f[len(f)-1]
			if strings.HasSuffix(installed, "/") {
				installed += path.Base(out)
			}
		}
	}
	if installed == "" || ep[0] != installed {
		t.Errorf("ENTRYPOINT runs %s; the build output %s is copied to %q", ep[0], out, installed)
	}

	// The volume holds the database and belongs to the user (a new named volume takes the
	// owner of the directory it is mounted on; a root-owned one could not be written).
	env := final.env(t)
	vols := jsonArgs(final.last("VOLUME"))
	if vols == nil {
		vols = strings.Fields(final.last("VOLUME"))
	}
	if len(vols) != 1 {
		t.Fatalf("VOLUME %v, want the one data directory", vols)
	}
	vol := vols[0]
	if db := env["UBIHOOKS_DATABASE"]; path.Dir(db) != vol {
		t.Errorf("UBIHOOKS_DATABASE=%s is not in the volume %s", db, vol)
	}
	owned := false
	for _, cp := range final.all("COPY") {
		f := strings.Fields(cp)
		if f[len(f)-1] == vol && slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, "--chown="+uid+":") || s == "--chown="+uid }) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("the volume %s is not created owned by the user %s (COPY --chown=%s… to it)", vol, uid, uid)
	}
	if wd := final.last("WORKDIR"); wd != vol {
		t.Errorf("WORKDIR %s, want the volume %s (relative paths, such as backups, land there)", wd, vol)
	}

	// The default command serves on every interface, at the port the image exposes.
	argv := d.argv()
	if len(argv) == 0 || argv[0] != "serve" {
		t.Fatalf("ENTRYPOINT and CMD run %q, want serve", argv)
	}
	c, err := parseServe(argv[1:], env)
	if err != nil {
		t.Fatalf("ubihooks %s with %v: %v", strings.Join(argv, " "), env, err)
	}
	host, port, _ := net.SplitHostPort(c.Listen)
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("serve listens on %s: from outside the container nothing reaches it", c.Listen)
	}
	if expose := strings.Fields(final.last("EXPOSE")); !slices.Contains(expose, port) && !slices.Contains(expose, port+"/tcp") {
		t.Errorf("EXPOSE %v, but serve listens on %s", expose, c.Listen)
	}

	// The build context: no secrets or databases; every source file.
	ignore := dockerIgnore(t, readRepoFile(t, dockerignorePath))
	for _, p := range []string{".git", ".env", "ubihooks.db", "ubihooks.db.key", "cmd/ubihooks/u.db-wal"} {
		if !ignore(p) {
			t.Errorf("%s does not leave %s out of the build context", dockerignorePath, p)
		}
	}
	root := filepath.Join("..", "..")
	sources := 0
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if e.IsDir() && (rel == ".git" || rel == ".ci") {
			return filepath.SkipDir
		}
		switch path.Ext(rel) {
		case ".go", ".mod", ".sum", ".sql", ".html", ".css", ".js", ".svg":
			sources++
			if ignore(rel) {
				t.Errorf("%s leaves the source %s out of the build context", dockerignorePath, rel)
			}
		}
		return nil
	})
	if err != nil || sources < 10 {
		t.Errorf("walking the repository: %v, %d sources", err, sources)
	}
}

// dockerIgnore returns whether a .dockerignore leaves out a path (relative to the context,
// with "/"): a pattern matches the path or one of its parent directories; "**/" matches
// any number of directories.
func dockerIgnore(t *testing.T, text string) func(string) bool {
	t.Helper()
	var pats []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") || strings.Contains(strings.TrimPrefix(line, "**/"), "**") {
			t.Fatalf("%s: %q: exceptions and inner ** are not read by this test", dockerignorePath, line)
		}
		pats = append(pats, strings.TrimPrefix(path.Clean(line), "/"))
	}
	return func(p string) bool {
		parts := strings.Split(p, "/")
		for _, pat := range pats {
			anyDir := strings.HasPrefix(pat, "**/")
			pat = strings.TrimPrefix(pat, "**/")
			for end := 1; end <= len(parts); end++ { // p and its parent directories
				starts := []int{0}
				if anyDir {
					starts = make([]int, end)
					for i := range starts {
						starts[i] = i
					}
				}
				for _, start := range starts {
					if ok, _ := path.Match(pat, strings.Join(parts[start:end], "/")); ok {
						return true
					}
				}
			}
		}
		return false
	}
}

// yamlLine is one scalar of a YAML document, by the path of its keys ("services.x.image";
// list items get the path of their list).
type yamlLine struct {
	path, value string
}

// parseYAMLLines reads the block-style YAML that compose files are written in, line by
// line: mappings by indentation, "- item" lists, flow sequences kept as their text.
func parseYAMLLines(text string) []yamlLine {
	var out []yamlLine
	type level struct {
		indent int
		key    string
	}
	var stack []level
	for _, raw := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " "))
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		keys := make([]string, len(stack))
		for i, l := range stack {
			keys[i] = l.key
		}
		prefix := strings.Join(keys, ".")
		if item, ok := strings.CutPrefix(trimmed, "- "); ok {
			out = append(out, yamlLine{prefix, unquote(item)})
			continue
		}
		k, v, _ := strings.Cut(trimmed, ":")
		k, v = unquote(k), strings.TrimSpace(v)
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		if v == "" {
			stack = append(stack, level{indent, k})
			continue
		}
		out = append(out, yamlLine{full, unquote(v)})
	}
	return out
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// composeCommand reads a compose command: a flow sequence (JSON-like) or a plain string.
func composeCommand(t *testing.T, v string) []string {
	t.Helper()
	if strings.HasPrefix(v, "[") {
		a := jsonArgs(v)
		if a == nil {
			t.Fatalf("%s: command %s: not a JSON array, which this test reads", composePath, v)
		}
		return a
	}
	return strings.Fields(v)
}

// TestPackagingCompose: the compose file's one-shot migration and its two replicas use
// the one database, the PostgreSQL service's own, and share a key that compose demands;
// each replica publishes the port the image serves on, on a host port of its own, and
// starts only once PostgreSQL is healthy and the migration succeeded.
func TestPackagingCompose(t *testing.T) {
	t.Parallel()
	lines := parseYAMLLines(readRepoFile(t, composePath))
	get := func(p string) string {
		for _, l := range lines {
			if l.path == p {
				return l.value
			}
		}
		return ""
	}
	list := func(p string) []string {
		var vs []string
		for _, l := range lines {
			if l.path == p {
				vs = append(vs, l.value)
			}
		}
		return vs
	}

	if img := get("services.postgres.image"); img != "postgres:16" {
		t.Errorf("services.postgres.image: %s, want postgres:16", img)
	}
	if hc := get("services.postgres.healthcheck.test"); !strings.Contains(hc, "pg_isready") {
		t.Errorf("services.postgres.healthcheck.test: %q, want pg_isready", hc)
	}
	user, db := get("services.postgres.environment.POSTGRES_USER"), get("services.postgres.environment.POSTGRES_DB")

	argv := composeCommand(t, get("services.migrate.command"))
	i := slices.Index(argv, "--database")
	if len(argv) == 0 || argv[0] != "migrate" || i < 0 || i+1 >= len(argv) {
		t.Fatalf("services.migrate.command: %q, want migrate --database URL", argv)
	}
	dsn := argv[i+1]
	if !strings.HasPrefix(dsn, "postgres://"+user+":") || !strings.Contains(dsn, "@postgres:5432/"+db+"?") {
		t.Errorf("migrate --database %s: want postgres://%s:…@postgres:5432/%s?… (the postgres service's user and database)", dsn, user, db)
	}
	if r := get("services.migrate.restart"); r != "no" {
		t.Errorf("services.migrate.restart: %q, want no (it runs once)", r)
	}
	if c := get("services.migrate.depends_on.postgres.condition"); c != "service_healthy" {
		t.Errorf("migrate depends on postgres with condition %q, want service_healthy", c)
	}

	image := parseDockerfile(t, readRepoFile(t, dockerfilePath))
	hostPorts := map[string]string{}
	for _, name := range []string{"ubihooks-1", "ubihooks-2"} {
		s := "services." + name
		if img := get(s + ".image"); img != get("services.migrate.image") || img == "" {
			t.Errorf("%s.image: %q, want the migration's image %q", s, img, get("services.migrate.image"))
		}
		if get(s+".build") == "" {
			t.Errorf("%s has no build: compose would look for its image in a registry", s)
		}
		if got := get(s + ".environment.UBIHOOKS_DATABASE"); got != dsn {
			t.Errorf("%s: UBIHOOKS_DATABASE=%s, want the migrated database %s", s, got, dsn)
		}
		if key := get(s + ".environment.UBIHOOKS_ENCRYPTION_KEY"); !strings.HasPrefix(key, "${UBIHOOKS_ENCRYPTION_KEY:?") {
			t.Errorf("%s: UBIHOOKS_ENCRYPTION_KEY=%s, want ${UBIHOOKS_ENCRYPTION_KEY:?…}: the replicas share the key, and compose refuses to start without it", s, key)
		}
		// The replica runs the image's command with the image's environment and its own.
		if cmd := get(s + ".command"); cmd != "" {
			t.Fatalf("%s.command: %s, which this test does not read (the image runs serve)", s, cmd)
		}
		env := image.final().env(t)
		for _, l := range lines {
			if k, ok := strings.CutPrefix(l.path, s+".environment."); ok {
				env[k] = l.value
			}
		}
		argv := image.argv()
		c, err := parseServe(argv[1:], env)
		if err != nil {
			t.Errorf("%s: ubihooks %s with %v: %v", s, strings.Join(argv, " "), env, err)
			continue
		}
		_, port, _ := net.SplitHostPort(c.Listen)
		ports := list(s + ".ports")
		if len(ports) != 1 {
			t.Errorf("%s.ports: %q, want one", s, ports)
			continue
		}
		host, container, _ := strings.Cut(ports[0], ":")
		if container != port {
			t.Errorf("%s publishes container port %s, but serve listens on %s", s, container, c.Listen)
		}
		if other, dup := hostPorts[host]; dup {
			t.Errorf("%s and %s both publish host port %s", other, name, host)
		}
		hostPorts[host] = name
		if grace, err := time.ParseDuration(get(s + ".stop_grace_period")); err != nil || grace <= c.ShutdownTimeout {
			t.Errorf("%s.stop_grace_period: %q, want more than serve's shutdown timeout %s (compose's default is 10s)", s, get(s+".stop_grace_period"), c.ShutdownTimeout)
		}
		for dep, want := range map[string]string{"postgres": "service_healthy", "migrate": "service_completed_successfully"} {
			if c := get(s + ".depends_on." + dep + ".condition"); c != want {
				t.Errorf("%s depends on %s with condition %q, want %s", s, dep, c, want)
			}
		}
	}
	if hostPorts["8081"] != "ubihooks-1" || hostPorts["8082"] != "ubihooks-2" {
		t.Errorf("host ports %v, want 8081 for ubihooks-1 and 8082 for ubihooks-2", hostPorts)
	}
}

// TestPackagingStaticBuild: the build the Dockerfile runs (CGO_ENABLED=0) succeeds, the
// binary links no C library (it runs on distroless static, which has none), and it runs.
func TestPackagingStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "ubihooks")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary names a dynamic loader: it is not static")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("the binary links %v", libs)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ubihooks "+version() {
		t.Errorf("ubihooks version: %v, %q, want %q", err, out, "ubihooks "+version())
	}
}
