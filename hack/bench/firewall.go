package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The firewall mode (issue 5) measures what the network decision costs on
// the data plane: one moat, its registry configured through the management
// API with the firewall off (public access, defaultAction Allow) and on
// (public access, defaultAction Deny, 200 IP rules of which only the last
// admits the client at 127.0.0.1), the two states interleaved round by
// round. Before each measurement a probe from 127.0.0.2 checks that the
// state is in force: refused with 403 when the firewall is on, admitted
// when it is off.

const (
	// defaultRegistryID is the ARM id moat gives its default registry
	// (cmd/moat/bootstrap.go).
	defaultRegistryID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/moat"
	armAPIVersion     = "2023-07-01"
	// cliClientID is the Azure CLI's public client id; moat's issuer takes
	// any UUID as the client of a password grant.
	cliClientID  = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	armScope     = "https://management.core.windows.net//.default"
	firewallRepo = "bench/firewall"
	// firewallRules is ACR's quota of IP rules per registry.
	firewallRules = 200
	// refusedSource is a loopback address no rule admits.
	refusedSource = "127.0.0.2"
)

type firewallParams struct {
	pullSize     int64
	pullReps     int // pulls per state per round
	rounds       int
	concurrency  int
	loadDuration time.Duration
}

func firewallParamsFor(quick bool) firewallParams {
	if quick {
		return firewallParams{pullSize: 8 * mib, pullReps: 2, rounds: 2, concurrency: 32, loadDuration: 500 * time.Millisecond}
	}
	// An even number of rounds: each state goes first equally often.
	return firewallParams{pullSize: 64 * mib, pullReps: 4, rounds: 4, concurrency: 32, loadDuration: 3 * time.Second}
}

type firewallResult struct {
	params  firewallParams
	started time.Time
	elapsed time.Duration
	machine machine
	get     map[bool]loadResult // by firewall on
	pull    map[bool]throughput
	netrule netruleBench
}

// firewallRuleValues returns n IP rules (addresses and CIDRs in ranges
// reserved for documentation and benchmarks) of which only the last, the
// address itself, admits admit.
func firewallRuleValues(n int, admit string) []string {
	out := make([]string, 0, n)
	for i := range n - 1 {
		switch i % 3 {
		case 0:
			out = append(out, fmt.Sprintf("198.18.%d.0/24", i))
		case 1:
			out = append(out, fmt.Sprintf("198.19.%d.7", i))
		default:
			out = append(out, fmt.Sprintf("203.0.113.%d", i))
		}
	}
	return append(out, admit)
}

// firewallBody is the PATCH body that turns the firewall on or off.
func firewallBody(on bool) ([]byte, error) {
	type ipRule struct {
		Action string `json:"action"`
		Value  string `json:"value"`
	}
	rules := []ipRule{}
	action := "Allow"
	if on {
		action = "Deny"
		for _, v := range firewallRuleValues(firewallRules, "127.0.0.1") {
			rules = append(rules, ipRule{Action: "Allow", Value: v})
		}
	}
	return json.Marshal(map[string]any{"properties": map[string]any{
		"publicNetworkAccess": "Enabled",
		"networkRuleSet":      map[string]any{"defaultAction": action, "ipRules": rules},
	}})
}

func stateName(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func runFirewall(ctx context.Context, c config) (string, error) {
	if c.moatURL == "" {
		return "", errors.New("-mode firewall needs -moat")
	}
	if c.moatPassword == "" {
		return "", errors.New("BENCH_MOAT_PASSWORD is not set")
	}
	p := firewallParamsFor(c.quick)
	res := &firewallResult{params: p, started: time.Now().UTC(), machine: describeMachine(), get: map[bool]loadResult{}, pull: map[bool]throughput{}}
	if c.netruleBench != "" {
		out, err := os.ReadFile(c.netruleBench)
		if err != nil {
			return "", fmt.Errorf("reading -netrule-bench: %w", err)
		}
		if res.netrule, err = parseGoBench(string(out)); err != nil {
			return "", fmt.Errorf("-netrule-bench %s: %w", c.netruleBench, err)
		}
	}

	t, err := newTarget(ctx, "moat", c.moatURL, c.moatUser, c.moatPassword)
	if err != nil {
		return "", err
	}
	mgmt, err := newManagement(ctx, t, c.registryID)
	if err != nil {
		return "", err
	}
	probe, err := newProbe(t)
	if err != nil {
		return "", err
	}
	// Start from the firewall off whatever the registry had.
	if err := mgmt.setFirewall(ctx, probe, false); err != nil {
		return "", err
	}
	if err := t.authorize(ctx, firewallRepo); err != nil {
		return "", err
	}
	m, err := testManifest(ctx, t, firewallRepo)
	if err != nil {
		return "", err
	}
	if err := putManifest(ctx, t, firewallRepo, "bench", m); err != nil {
		return "", err
	}
	data := make([]byte, p.pullSize)
	if _, err := rand.Read(data); err != nil {
		return "", err
	}
	binary.BigEndian.PutUint64(data, uint64(time.Now().UnixNano()))
	sum := sha256.Sum256(data)
	dgst := "sha256:" + hex.EncodeToString(sum[:])
	if err := pushMonolithic(ctx, t, firewallRepo, data, dgst); err != nil {
		return "", err
	}

	path := "/v2/" + firewallRepo + "/manifests/bench"
	lats := map[bool][]time.Duration{}
	elapsed := map[bool]time.Duration{}
	for round := range p.rounds {
		for _, on := range rotate([]bool{false, true}, round) {
			if err := mgmt.setFirewall(ctx, probe, on); err != nil {
				return "", err
			}
			if _, _, err := loadSpread(ctx, []*target{t}, firewallRepo, http.MethodGet, path, p.concurrency, p.loadDuration/5); err != nil {
				return "", fmt.Errorf("manifest GET, firewall %s: %w", stateName(on), err)
			}
			lat, wall, err := loadSpread(ctx, []*target{t}, firewallRepo, http.MethodGet, path, p.concurrency, p.loadDuration)
			if err != nil {
				return "", fmt.Errorf("manifest GET, firewall %s: %w", stateName(on), err)
			}
			lats[on] = append(lats[on], lat...)
			elapsed[on] += wall
			for range p.pullReps {
				start := time.Now()
				n, err := pullBlob(ctx, t, firewallRepo, dgst)
				if err != nil {
					return "", fmt.Errorf("pull, firewall %s: %w", stateName(on), err)
				}
				if n != p.pullSize {
					return "", fmt.Errorf("pull, firewall %s: got %d bytes, want %d", stateName(on), n, p.pullSize)
				}
				res.pull[on] = res.pull[on].add(n, time.Since(start))
			}
		}
	}
	// Leave the registry open, as the script found it.
	if err := mgmt.setFirewall(ctx, probe, false); err != nil {
		return "", err
	}
	for _, on := range []bool{false, true} {
		slices.Sort(lats[on])
		res.get[on] = summarize(lats[on], elapsed[on])
		slog.Info("firewall", "state", stateName(on), "manifest GET req/s", fmt.Sprintf("%.0f", res.get[on].rps()),
			"p50", res.get[on].p50, "p99", res.get[on].p99, "pull MB/s", fmt.Sprintf("%.0f", res.pull[on].mbps()))
	}
	res.elapsed = time.Since(res.started)
	return res.markdown(c), nil
}

// management calls moat's ARM-compatible API with a token from its
// Entra-compatible issuer (password grant for the admin user, as
// `moat login` and azidentity's UsernamePasswordCredential get one).
type management struct {
	t          *target
	registryID string
	token      string
}

func newManagement(ctx context.Context, t *target, registryID string) (*management, error) {
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {cliClientID},
		"username":   {t.user},
		"password":   {t.password},
		"scope":      {armScope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url("/organizations/oauth2/v2.0/token"), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := t.do(req, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("management token: %w", err)
	}
	defer drain(resp)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return nil, fmt.Errorf("management token response: %w", err)
	}
	if tok.AccessToken == "" {
		return nil, errors.New("management token response carries no access_token")
	}
	return &management{t: t, registryID: registryID, token: tok.AccessToken}, nil
}

// setFirewall PATCHes the registry and waits until the probe sees the new
// state in force.
func (m *management) setFirewall(ctx context.Context, probe *http.Client, on bool) error {
	body, err := firewallBody(on)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, m.t.url(m.registryID+"?api-version="+armAPIVersion), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.t.do(req, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("turning the firewall %s: %w", stateName(on), err)
	}
	drain(resp)
	deadline := time.Now().Add(10 * time.Second)
	for {
		refused, status, err := probeRefused(ctx, probe, m.t)
		if err != nil {
			return err
		}
		if refused == on {
			// The benchmark's own client must still get in.
			if ownRefused, ownStatus, err := probeRefused(ctx, m.t.client, m.t); err != nil || ownRefused {
				return fmt.Errorf("firewall %s: the client at 127.0.0.1 is refused (status %d, %v): the rule admitting it is not in force", stateName(on), ownStatus, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("firewall %s: a client at %s still gets status %d after 10s", stateName(on), refusedSource, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newProbe returns a client whose connections come from refusedSource.
func newProbe(t *target) (*http.Client, error) {
	local, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(refusedSource, "0"))
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}, nil
}

// probeRefused sends GET /v2/ with the benchmark's credentials and reports
// whether the network rules refused it (403 DENIED); an admitted request
// gets 200. It carries credentials because a bare request from a refused
// address may get the Bearer challenge instead of DENIED while the
// registry lets trusted services through (see internal/dataplane/trusted.go).
func probeRefused(ctx context.Context, c *http.Client, t *target) (bool, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url("/v2/"), http.NoBody)
	if err != nil {
		return false, 0, err
	}
	if t.user != "" {
		req.SetBasicAuth(t.user, t.password)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, 0, fmt.Errorf("probe GET /v2/: %w", err)
	}
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body) // only a 403's code matters
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusForbidden && len(body.Errors) > 0 && body.Errors[0].Code == "DENIED":
		return true, resp.StatusCode, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusOK:
		return false, resp.StatusCode, nil
	}
	return false, resp.StatusCode, fmt.Errorf("probe GET /v2/: unexpected status %d", resp.StatusCode)
}

// netruleBench is the output of `go test -bench` for internal/netrule.
type netruleBench struct {
	cpu  string
	rows []goBenchRow
}

type goBenchRow struct {
	name                  string
	nsPerOp               float64
	bytesPerOp, allocsPer string
}

// parseGoBench reads the result lines of `go test -bench` output.
func parseGoBench(out string) (netruleBench, error) {
	var nb netruleBench
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			nb.cpu = strings.TrimSpace(cpu)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		row := goBenchRow{name: f[0]}
		found := false
		for i := 2; i+1 < len(f); i += 2 {
			switch f[i+1] {
			case "ns/op":
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return nb, fmt.Errorf("line %q: %w", line, err)
				}
				row.nsPerOp, found = v, true
			case "B/op":
				row.bytesPerOp = f[i]
			case "allocs/op":
				row.allocsPer = f[i]
			}
		}
		if found {
			nb.rows = append(nb.rows, row)
		}
	}
	if len(nb.rows) == 0 {
		return nb, errors.New("no benchmark results in it")
	}
	return nb, nil
}

func (r *firewallResult) markdown(c config) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p := r.params
	off, on := r.get[false], r.get[true]
	getRatio := ratio(on.rps(), off.rps())
	pullRatio := ratio(r.pull[true].mbps(), r.pull[false].mbps())

	w("## %s\n\n", titleFirewall)
	if c.quick {
		w("> **Quick run** (`--quick`): small sizes and short runs to check the harness. These numbers are not the benchmark.\n\n")
	}
	w("Issue 5's targets: what the network decision, made on every data-plane request, costs. One moat,\n")
	w("its default registry configured through the management API (PATCH of the registry, with a token\n")
	w("from moat's Entra-compatible issuer) in two states, interleaved (%d rounds, the order alternating):\n\n", p.rounds)
	w("- **off**: `publicNetworkAccess: Enabled`, `networkRuleSet.defaultAction: Allow`, no IP rules;\n")
	w("- **on**: `publicNetworkAccess: Enabled`, `defaultAction: Deny` and %d IP rules (addresses and /24s),\n", firewallRules)
	w("  of which only the last, `127.0.0.1`, admits the benchmark's client.\n\n")
	w("Before each measurement a request from %s checks that the state is in force (403 `DENIED` with the\n", refusedSource)
	w("firewall on, admitted with it off). Figures from one run of\n\n")
	w("```\n%s\n```\n\n", c.command)
	w("| | |\n|---|---|\n")
	w("| date | %s |\n", r.started.Format("2006-01-02 15:04 MST"))
	w("| machine | %d CPUs (nproc), %s, %s memory, %s |\n", r.machine.cpus, r.machine.cpuModel, r.machine.memory, r.machine.kernel)
	w("| moat | %s, `moat serve --insecure-http --log-level warn` on its embedded stores, bearer token on every request |\n", orUnknown(c.moatVersion))
	w("| run time | %s |\n\n", r.elapsed.Round(time.Second))
	w("Manifest GET by tag at concurrency %d, %s per state per round after a short warm-up; pull is %d\n", p.concurrency, p.loadDuration, p.pullReps)
	w("sequential GETs of one %s blob per state per round (page cache). The client and moat share the\n", sizeLabel(p.pullSize))
	w("machine's CPUs over loopback, so a difference of a few percent is within this machine's noise.\n\n")
	w("| | firewall off | firewall on (%d rules) | on / off |\n|---|---:|---:|---:|\n", firewallRules)
	w("| manifest GET, concurrency %d | %.0f req/s | %.0f req/s | %.3f |\n", p.concurrency, off.rps(), on.rps(), getRatio)
	w("| manifest GET p50 / p99 | %s / %s | %s / %s | |\n", ms(off.p50), ms(off.p99), ms(on.p50), ms(on.p99))
	w("| pull %s | %.0f MB/s | %.0f MB/s | %.3f |\n\n", sizeLabel(p.pullSize), r.pull[false].mbps(), r.pull[true].mbps(), pullRatio)

	w("| target (DESIGN.md §7) | measured | met |\n|---|---|---|\n")
	w("| manifest GET with the firewall on (%d rules) within 3%% of off | %.3f × off | %s |\n", firewallRules, getRatio, metMark(getRatio >= 0.97))
	if counts, worst, ok := r.netrule.decideSummary(); ok {
		w("| the decision with %s IP rules under 1 µs each | at most %.1f ns | %s |\n", counts, worst, metMark(worst < 1000))
	}
	w("\n")

	if len(r.netrule.rows) > 0 {
		w("The decision alone (`internal/netrule`, `Policy.Decide` on a policy compiled once per configuration\n")
		w("change, clients drawn from 1024 addresses), measured just before the run above by\n\n")
		w("```\n%s\n```\n\n", c.netruleBenchCommand)
		if r.netrule.cpu != "" {
			w("(cpu: %s)\n\n", r.netrule.cpu)
		}
		w("| benchmark | ns/op | B/op | allocs/op |\n|---|---:|---:|---:|\n")
		for _, row := range r.netrule.rows {
			w("| %s | %s | %s | %s |\n", row.name, strconv.FormatFloat(row.nsPerOp, 'f', -1, 64), orDash(row.bytesPerOp), orDash(row.allocsPer))
		}
		w("\n")
	}
	return b.String()
}

// decideSummary returns the rule counts of the Decide benchmarks ("10, 200
// and 10,000") and the slowest of them in ns/op.
func (nb netruleBench) decideSummary() (string, float64, bool) {
	var counts []string
	worst := 0.0
	for _, row := range nb.rows {
		if !strings.HasPrefix(row.name, "BenchmarkDecide/") || row.rules() == "" {
			continue
		}
		counts = append(counts, row.rules())
		worst = max(worst, row.nsPerOp)
	}
	switch len(counts) {
	case 0:
		return "", 0, false
	case 1:
		return counts[0], worst, true
	}
	return strings.Join(counts[:len(counts)-1], ", ") + " and " + counts[len(counts)-1], worst, true
}

// rules returns the rules= parameter of a benchmark name such as
// BenchmarkDecide/rules=10000-2, with thousands separated, or "".
func (g goBenchRow) rules() string {
	_, v, ok := strings.Cut(g.name, "rules=")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return ""
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func metMark(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
