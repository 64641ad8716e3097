package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func titles(d document) []string {
	var out []string
	for _, s := range d.sections {
		out = append(out, s.title)
	}
	return out
}

const compareDoc = "# Benchmarks\n\nintro\n\n```\n## not a heading\n```\n\n" +
	"## Targets (DESIGN.md §7, registry core)\n\nt1\n\n## Blob push\n\np1\n\n## Tags list\n\ntags1\n"

func TestParseDocument(t *testing.T) {
	d := parseDocument(compareDoc)
	if !strings.Contains(d.preamble, "## not a heading") || !strings.HasPrefix(d.preamble, "# Benchmarks") {
		t.Errorf("preamble %q: a fenced ## line must stay in it", d.preamble)
	}
	want := []string{"Targets (DESIGN.md §7, registry core)", "Blob push", "Tags list"}
	if got := titles(d); !slices.Equal(got, want) {
		t.Errorf("titles %q, want %q", got, want)
	}
	if d.String() != compareDoc {
		t.Errorf("round trip changed the document:\n%s", d.String())
	}
}

func TestMergeKeepsOtherModes(t *testing.T) {
	scale := "## Scale-out\n\nscale1\n"
	fw := "## Network rules\n\nfw1\n"

	// Other modes into an empty file: a title, then their sections in
	// their fixed order whatever the order of the runs.
	d := mergeDocument(document{}, parseDocument(fw), modeFirewall)
	d = mergeDocument(d, parseDocument(scale), modeScaleout)
	if !strings.HasPrefix(d.String(), "# Benchmarks\n\n## Scale-out") {
		t.Errorf("new file:\n%s", d.String())
	}
	if got := titles(d); !slices.Equal(got, []string{"Scale-out", "Network rules"}) {
		t.Errorf("titles %q", got)
	}

	// The comparison then writes its preamble and sections before them.
	d = mergeDocument(d, parseDocument(compareDoc), modeCompare)
	want := []string{"Targets (DESIGN.md §7, registry core)", "Blob push", "Tags list", "Scale-out", "Network rules"}
	if got := titles(d); !slices.Equal(got, want) {
		t.Fatalf("titles %q, want %q", got, want)
	}
	if !strings.Contains(d.preamble, "intro") {
		t.Errorf("the comparison's preamble was not taken: %q", d.preamble)
	}

	// A new comparison replaces only its own sections (one dropped).
	d = mergeDocument(d, parseDocument("# Benchmarks\n\nintro2\n\n## Blob push\n\np2\n\n## Tags list\n\ntags2\n"), modeCompare)
	out := d.String()
	for _, s := range []string{"intro2", "p2", "tags2", "scale1", "fw1"} {
		if !strings.Contains(out, s) {
			t.Errorf("%q missing after a second comparison:\n%s", s, out)
		}
	}
	for _, s := range []string{"intro\n", "p1", "tags1", "t1"} {
		if strings.Contains(out, s) {
			t.Errorf("stale %q kept:\n%s", s, out)
		}
	}

	// A new scale-out run replaces only its section, in place, and keeps
	// the comparison's preamble and an unknown section.
	d = mergeDocument(parseDocument(out+"\n## Notes\n\nmine\n"), parseDocument("## Scale-out\n\nscale2\n"), modeScaleout)
	out = d.String()
	if strings.Contains(out, "scale1") || !strings.Contains(out, "scale2") || !strings.Contains(out, "intro2") || !strings.Contains(out, "mine") {
		t.Errorf("after a second scale-out:\n%s", out)
	}
	want = []string{"Blob push", "Tags list", "Scale-out", "Network rules", "Notes"}
	if got := titles(d); !slices.Equal(got, want) {
		t.Errorf("titles %q, want %q", got, want)
	}
}

func TestWriteMerged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "BENCHMARKS.md")
	if _, err := writeMerged(path, "## Network rules\n\nfw1\n", modeFirewall); err != nil {
		t.Fatal(err)
	}
	if _, err := writeMerged(path, compareDoc, modeCompare); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "# Benchmarks\n\nintro") || !strings.HasSuffix(string(b), "## Network rules\n\nfw1\n") {
		t.Errorf("file:\n%s", b)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".bench-report-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestCompareReportOwnsItsSections keeps the comparison's section titles
// and compareTitles in step: a title missing from the list would be kept
// twice by the merge.
func TestCompareReportOwnsItsSections(t *testing.T) {
	r := &report{
		config: config{sizes: []int64{mib}, chunk: mib},
		tags:   tagsResult{by: map[string]tagsTarget{}},
	}
	for _, s := range parseDocument(r.markdown()).sections {
		if sectionMode(s.title) != modeCompare {
			t.Errorf("section %q of the comparison is not in compareTitles", s.title)
		}
	}
}

func TestRotate(t *testing.T) {
	in := []string{"a", "b", "c"}
	cases := map[int][]string{0: {"a", "b", "c"}, 1: {"b", "c", "a"}, 2: {"c", "a", "b"}, 3: {"a", "b", "c"}}
	for r, want := range cases {
		if got := rotate(in, r); !slices.Equal(got, want) {
			t.Errorf("rotate(%d) = %v, want %v", r, got, want)
		}
	}
}

func TestConcurrently(t *testing.T) {
	seen := make([]bool, 5)
	if _, err := concurrently(5, func(i int) error { seen[i] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(seen, false) {
		t.Errorf("not every index ran: %v", seen)
	}
	_, err := concurrently(3, func(i int) error {
		if i == 1 {
			return os.ErrNotExist
		}
		return nil
	})
	if err == nil {
		t.Error("an error of one worker was lost")
	}
}

func TestFirewallRules(t *testing.T) {
	rules := firewallRuleValues(firewallRules, "127.0.0.1")
	if len(rules) != 200 {
		t.Fatalf("%d rules, want 200 (ACR's quota)", len(rules))
	}
	seen := map[string]bool{}
	for i, r := range rules {
		if seen[r] {
			t.Errorf("rule %q twice", r)
		}
		seen[r] = true
		var p netip.Prefix
		if a, err := netip.ParseAddr(r); err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		} else if p, err = netip.ParsePrefix(r); err != nil {
			t.Fatalf("rule %d %q is neither an address nor a CIDR", i, r)
		}
		// Only the last rule may admit the client or the probe.
		for _, ip := range []string{"127.0.0.1", refusedSource} {
			if p.Contains(netip.MustParseAddr(ip)) && (i != len(rules)-1 || ip != "127.0.0.1") {
				t.Errorf("rule %d %q admits %s", i, r, ip)
			}
		}
	}
	if rules[len(rules)-1] != "127.0.0.1" {
		t.Errorf("last rule %q", rules[len(rules)-1])
	}
}

func TestFirewallBody(t *testing.T) {
	type body struct {
		Properties struct {
			PublicNetworkAccess string `json:"publicNetworkAccess"`
			NetworkRuleSet      struct {
				DefaultAction string `json:"defaultAction"`
				IPRules       []struct {
					Action, Value string
				} `json:"ipRules"`
			} `json:"networkRuleSet"`
		} `json:"properties"`
	}
	for _, on := range []bool{false, true} {
		raw, err := firewallBody(on)
		if err != nil {
			t.Fatal(err)
		}
		var b body
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		p := b.Properties
		wantAction, wantRules := "Allow", 0
		if on {
			wantAction, wantRules = "Deny", firewallRules
		}
		if p.PublicNetworkAccess != "Enabled" || p.NetworkRuleSet.DefaultAction != wantAction || len(p.NetworkRuleSet.IPRules) != wantRules {
			t.Errorf("firewall %s: %s", stateName(on), raw)
		}
		// "ipRules": [] rather than null, so that PATCH clears the rules.
		if !on && !strings.Contains(string(raw), `"ipRules":[]`) {
			t.Errorf("firewall off does not clear the rules: %s", raw)
		}
	}
}

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/moat-registry/moat/internal/netrule
cpu: AMD EPYC
BenchmarkDecide/rules=10-2         	59029198	        19.53 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecide/rules=200-2        	40000000	        25.10 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecide/rules=10000-2      	30000000	        33.00 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/moat-registry/moat/internal/netrule	4.2s
`

func TestParseGoBench(t *testing.T) {
	nb, err := parseGoBench(goBenchOutput)
	if err != nil {
		t.Fatal(err)
	}
	if nb.cpu != "AMD EPYC" || len(nb.rows) != 3 {
		t.Fatalf("parsed %+v", nb)
	}
	if r := nb.rows[0]; r.name != "BenchmarkDecide/rules=10-2" || r.nsPerOp != 19.53 || r.bytesPerOp != "0" || r.allocsPer != "0" {
		t.Errorf("row 0 %+v", r)
	}
	counts, worst, ok := nb.decideSummary()
	if !ok || worst != 33 || counts != "10, 200 and 10,000" {
		t.Errorf("decideSummary = %q, %v, %v", counts, worst, ok)
	}
	if got := nb.rows[2].rules(); got != "10,000" {
		t.Errorf("rules of %s = %q", nb.rows[2].name, got)
	}
	if _, err := parseGoBench("PASS\nok x 1s\n"); err == nil {
		t.Error("output without results parsed")
	}
	if _, err := parseGoBench("BenchmarkX-2 10 abc ns/op\n"); err == nil {
		t.Error("a malformed ns/op parsed")
	}
}

func TestFirewallReport(t *testing.T) {
	nb, err := parseGoBench(goBenchOutput)
	if err != nil {
		t.Fatal(err)
	}
	r := &firewallResult{
		params: firewallParamsFor(false),
		get: map[bool]loadResult{
			false: {requests: 10000, elapsed: time.Second},
			true:  {requests: 9600, elapsed: time.Second},
		},
		pull:    map[bool]throughput{false: {1000e6, time.Second}, true: {990e6, time.Second}},
		netrule: nb,
	}
	md := r.markdown(config{command: "./scripts/bench.sh --firewall"})
	for _, want := range []string{
		"## Network rules", "./scripts/bench.sh --firewall", "| 0.960 |",
		"within 3% of off | 0.960 × off | **not met** |",
		"the decision with 10, 200 and 10,000 IP rules under 1 µs each | at most 33.0 ns | met |",
		"| BenchmarkDecide/rules=200-2 | 25.1 | 0 | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if d := parseDocument(md); len(d.sections) != 1 || sectionMode(d.sections[0].title) != modeFirewall {
		t.Errorf("the firewall report is not one section of its own: %q", titles(d))
	}
}

func TestScaleoutReport(t *testing.T) {
	tp := func(mbps float64) throughput { return throughput{bytes: int64(mbps * 1e6), dur: time.Second} }
	r := &scaleoutResult{
		params:    scaleoutParamsFor(false),
		machine:   machine{cpus: 2},
		pushMono:  map[string]throughput{"a": tp(400), "b": tp(200), "c": tp(180)},
		pushChunk: map[string]throughput{"a": tp(300), "b": tp(150), "c": tp(150)},
		pull:      map[string]throughput{"a": tp(1000), "b": tp(500), "c": tp(600)},
		get: map[string]loadResult{
			"a": {requests: 10000, elapsed: time.Second},
			"b": {requests: 5000, elapsed: time.Second},
			"c": {requests: 4000, elapsed: time.Second},
		},
	}
	md := r.markdown(config{command: "./scripts/bench.sh --scaleout"})
	for _, want := range []string{
		"## Scale-out", "./scripts/bench.sh --scaleout",
		"| push 64 MiB monolithic, 4 clients | 400 MB/s | 200 MB/s | 180 MB/s | 0.50 | 0.90 |",
		"| pull 64 MiB, 4 clients | 1000 MB/s | 500 MB/s | 600 MB/s | 0.50 | 1.20 |",
		"| manifest GET, concurrency 32 | 10000 req/s | 5000 req/s | 4000 req/s | 0.50 | 0.80 |",
		"cannot show scaling",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if d := parseDocument(md); len(d.sections) != 1 || sectionMode(d.sections[0].title) != modeScaleout {
		t.Errorf("the scale-out report is not one section of its own: %q", titles(d))
	}
}

// TestRepositoryReport checks that every section of the checked-in
// BENCHMARKS.md belongs to a mode, so that each run replaces its sections
// instead of adding a second copy.
func TestRepositoryReport(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	d := parseDocument(string(b))
	for _, s := range d.sections {
		if sectionMode(s.title) == "" && !slices.Contains(handTitles, s.title) {
			t.Errorf("BENCHMARKS.md section %q belongs to no mode of the driver and is not a hand-written section", s.title)
		}
	}
	for _, m := range modeOrder {
		merged := mergeDocument(d, document{}, m)
		if len(merged.sections) >= len(d.sections) {
			t.Errorf("mode %s owns no section of BENCHMARKS.md", m)
		}
	}
}
