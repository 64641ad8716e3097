package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(i))
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 100", hundred, 50, ms(50)},
		{"p99 of 100", hundred, 99, ms(99)},
		{"p100 of 100", hundred, 100, ms(100)},
		{"p0 of 100", hundred, 0, ms(1)},
		{"p50 of 3", []time.Duration{ms(1), ms(2), ms(3)}, 50, ms(2)},
	}
	for _, c := range cases {
		if got := percentile(c.sorted, c.p); got != c.want {
			t.Errorf("%s: percentile %v = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestThroughput(t *testing.T) {
	tp := throughput{}.add(50e6, time.Second).add(50e6, time.Second)
	if got := tp.mbps(); got != 50 {
		t.Errorf("100 MB in 2 s = %v MB/s, want 50", got)
	}
	if got := (throughput{bytes: 10}).mbps(); got != 0 {
		t.Errorf("no time measured: %v MB/s, want 0", got)
	}
}

func TestRepsFor(t *testing.T) {
	cases := []struct {
		size, budget int64
		lo, hi, want int
	}{
		{1 * mib, 256 * mib, 2, 16, 16},
		{64 * mib, 256 * mib, 2, 16, 4},
		{512 * mib, 256 * mib, 2, 16, 2},
	}
	for _, c := range cases {
		if got := repsFor(c.size, c.budget, c.lo, c.hi); got != c.want {
			t.Errorf("repsFor(%d, %d) = %d, want %d", c.size, c.budget, got, c.want)
		}
	}
}

func TestPushReps(t *testing.T) {
	for size, want := range map[int64]int{mib: 16, 32 * mib: 8, 64 * mib: 8, 512 * mib: 8} {
		if got := pushReps(size); got != want {
			t.Errorf("pushReps(%s) = %d, want %d", sizeLabel(size), got, want)
		}
	}
}

// Each repetition's bound adds to the row's, and moat's push over it is
// one of the row's ratios.
func TestEndRep(t *testing.T) {
	var r blobResult
	r.endRep(throughput{bytes: 900e6, dur: time.Second}, throughput{bytes: 1000e6, dur: time.Second})
	r.endRep(throughput{bytes: 500e6, dur: time.Second}, throughput{bytes: 1000e6, dur: 2 * time.Second})
	if r.bound != (throughput{bytes: 2000e6, dur: 3 * time.Second}) {
		t.Errorf("row bound %+v, want 2000e6 bytes in 3s", r.bound)
	}
	if want := []float64{0.9, 1}; !slices.Equal(r.boundRatios, want) {
		t.Errorf("ratios %v, want %v", r.boundRatios, want)
	}
}

func TestSpread(t *testing.T) {
	cases := []struct {
		in   []float64
		want string
	}{
		{nil, "–"},
		{[]float64{0.9}, "0.90 / 0.90 / 0.90"},
		{[]float64{1.1, 0.5, 0.9}, "0.50 / 0.90 / 1.10"},
		{[]float64{1.0, 0.54, 0.98, 0.96}, "0.54 / 0.97 / 1.00"},
	}
	for _, c := range cases {
		in := slices.Clone(c.in)
		if got := spread(c.in); got != c.want {
			t.Errorf("spread(%v) = %q, want %q", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("spread reordered its argument: %v, was %v", c.in, in)
		}
	}
	r := &report{
		config: config{sizes: []int64{512 * mib}, chunk: 16 * mib},
		push: []blobResult{{size: 512 * mib, mode: "chunked", reps: 2,
			by:          map[string]throughput{nameMoat: {900e6, time.Second}, nameDist: {300e6, time.Second}},
			bound:       throughput{bytes: 1000e6, dur: time.Second},
			boundRatios: []float64{0.5, 1.02}}},
	}
	if md := r.markdown(); !strings.Contains(md, "| 512 MiB | chunked | 2 | 900 | 300 | 1000 | 3.00 | 0.90 | 0.50 / 0.76 / 1.02 |") {
		t.Errorf("the push table does not show the repetitions' spread:\n%s", md)
	}
}

func TestParseChallenge(t *testing.T) {
	got := parseChallenge(`Bearer realm="http://127.0.0.1:5000/oauth2/token",service="127.0.0.1:5000",scope="repository:a/b:pull,push"`)
	want := map[string]string{"realm": "http://127.0.0.1:5000/oauth2/token", "service": "127.0.0.1:5000", "scope": "repository:a/b:pull,push"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(parseChallenge(`Basic realm="x"`)) != 0 {
		t.Errorf("a Basic challenge parsed as Bearer")
	}
	if len(parseChallenge(`Bearer realm="unterminated`)) != 0 {
		t.Errorf("an unterminated value parsed")
	}
}

func TestNextLink(t *testing.T) {
	cases := map[string]string{
		`</v2/r/tags/list?last=b&n=2>; rel="next"`: "/v2/r/tags/list?last=b&n=2",
		`</v2/r/tags/list?last=b>; rel="prev"`:     "",
		``:                                         "",
		`/v2/x; rel="next"`:                        "",
	}
	for in, want := range cases {
		if got := nextLink(in); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSizeLabel(t *testing.T) {
	cases := map[int64]string{1 * mib: "1 MiB", 512 * mib: "512 MiB", 4 * kib: "4 KiB", 1000: "1000 B"}
	for in, want := range cases {
		if got := sizeLabel(in); got != want {
			t.Errorf("sizeLabel(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestVerdicts(t *testing.T) {
	r := &report{
		config: config{sizes: []int64{mib, 512 * mib}},
		bound:  bound{hashWrite: throughput{bytes: 1000e6, dur: time.Second}},
		push: []blobResult{
			{size: mib, mode: "monolithic", by: map[string]throughput{nameMoat: {1, time.Second}, nameDist: {2, time.Second}}},
			{size: 512 * mib, mode: "monolithic", by: map[string]throughput{nameMoat: {950e6, time.Second}, nameDist: {500e6, time.Second}}},
			{size: 512 * mib, mode: "chunked", by: map[string]throughput{nameMoat: {800e6, time.Second}, nameDist: {500e6, time.Second}}},
			{size: 512 * mib, mode: "streamed", by: map[string]throughput{nameMoat: {920e6, time.Second}, nameDist: {950e6, time.Second}}},
		},
		pull: []blobResult{{size: 512 * mib, by: map[string]throughput{nameMoat: {900e6, time.Second}, nameDist: {1000e6, time.Second}}}},
		manifests: []manifestResult{
			{method: "GET", concurrency: 8, by: map[string]loadResult{nameMoat: {requests: 1, elapsed: time.Second}, nameDist: {requests: 100, elapsed: time.Second}}},
			{method: "GET", concurrency: 32, by: map[string]loadResult{nameMoat: {requests: 300, elapsed: time.Second}, nameDist: {requests: 100, elapsed: time.Second}}},
		},
	}
	got := map[string]bool{}
	for _, v := range r.verdicts() {
		got[v.target] = v.met
	}
	want := map[string]bool{
		"512 MiB push (monolithic) ≥ 0.9 × bound and faster than Distribution": true,
		"512 MiB push (chunked) ≥ 0.9 × bound and faster than Distribution":    false,
		"512 MiB push (streamed) ≥ 0.9 × bound and faster than Distribution":   false, // slower than Distribution
		"512 MiB pull ≥ Distribution":                                          false,
		"manifest GET at concurrency 32 ≥ 2 × Distribution":                    true,
	}
	if len(got) != len(want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
	for k, v := range want {
		if met, ok := got[k]; !ok || met != v {
			t.Errorf("verdict %q: met=%v (present %v), want %v", k, met, ok, v)
		}
	}
	if md := r.markdown(); !strings.Contains(md, "**not met**") || !strings.Contains(md, "| met |") {
		t.Errorf("the report does not show both verdicts:\n%s", md)
	}
	// A row's own bound, measured alongside its repetitions, is the one
	// its ratio uses: 800 MB/s is 0.8 × the run's bound but 0.94 × its own.
	r.push[2].bound = throughput{bytes: 850e6, dur: time.Second}
	for _, v := range r.verdicts() {
		if strings.HasPrefix(v.target, "512 MiB push (chunked)") && !v.met {
			t.Errorf("chunked push at 0.94 × its row's bound: %+v, want met", v)
		}
	}
	if md := r.markdown(); !strings.Contains(md, "| 512 MiB | chunked | 0 | 800 | 500 | 850 | 1.60 | 0.94 | – |") {
		t.Errorf("the push table does not divide by the row's bound:\n%s", md)
	}
	// With repetitions, the verdict is their median ratio: one stalled
	// bound measurement (the 2.5) lifts the total to 0.94 but not the
	// median.
	r.push[2].boundRatios = []float64{0.85, 2.5, 0.86, 0.88}
	for _, v := range r.verdicts() {
		if !strings.HasPrefix(v.target, "512 MiB push (chunked)") {
			continue
		}
		if v.met || v.measured != "0.87 × bound (median of 4 repetitions), 1.60 × Distribution" {
			t.Errorf("chunked push with a median ratio of 0.87: %+v, want not met and the median shown", v)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(c.in)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("median reordered its argument: %v", c.in)
		}
	}
}
