package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	nameMoat = "moat"
	nameDist = "Distribution"
)

type report struct {
	config    config
	started   time.Time
	elapsed   time.Duration
	machine   machine
	bound     bound
	push      []blobResult
	pull      []blobResult
	manifests []manifestResult
	tags      tagsResult
}

// verdict is one line of the targets table.
type verdict struct {
	target   string
	measured string
	met      bool
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (r *report) verdicts() []verdict {
	var out []verdict
	largest := r.config.sizes[len(r.config.sizes)-1]
	for _, p := range r.push {
		if p.size != largest {
			continue
		}
		m, d := p.by[nameMoat].mbps(), p.by[nameDist].mbps()
		// The median of the repetitions' ratios, each push over the bound
		// measured right after it: one stall of the disk during a bound
		// measurement (seen here at 0.45× the others) would otherwise lower
		// the row's total bound and flatter the whole row.
		toBound, of := ratio(m, r.rowBound(p)), "total"
		if len(p.boundRatios) > 0 {
			toBound, of = median(p.boundRatios), fmt.Sprintf("median of %d repetitions", len(p.boundRatios))
		}
		out = append(out, verdict{
			target:   fmt.Sprintf("%s push (%s) ≥ 0.9 × bound and faster than Distribution", sizeLabel(p.size), p.mode),
			measured: fmt.Sprintf("%.2f × bound (%s), %.2f × Distribution", toBound, of, ratio(m, d)),
			met:      toBound >= 0.9 && m > d,
		})
	}
	for _, p := range r.pull {
		m, d := p.by[nameMoat].mbps(), p.by[nameDist].mbps()
		out = append(out, verdict{
			target:   fmt.Sprintf("%s pull ≥ Distribution", sizeLabel(p.size)),
			measured: fmt.Sprintf("%.2f × Distribution", ratio(m, d)),
			met:      m >= d,
		})
	}
	for _, mr := range r.manifests {
		if mr.concurrency != 32 {
			continue
		}
		m, d := mr.by[nameMoat].rps(), mr.by[nameDist].rps()
		out = append(out, verdict{
			target:   fmt.Sprintf("manifest %s at concurrency 32 ≥ 2 × Distribution", mr.method),
			measured: fmt.Sprintf("%.2f × Distribution", ratio(m, d)),
			met:      ratio(m, d) >= 2,
		})
	}
	return out
}

// rowBound is the bound a push row is compared with: the one measured
// alongside its repetitions, else (a report built without it) the one
// measured at the start.
func (r *report) rowBound(p blobResult) float64 {
	if p.bound.dur > 0 {
		return p.bound.mbps()
	}
	return r.bound.hashWrite.mbps()
}

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.config

	w("# Benchmarks\n\n")
	if c.quick {
		w("> **Quick run** (`--quick`): small sizes and short runs to check the harness. These numbers are not the benchmark.\n\n")
	}
	w("moat and CNCF Distribution measured side by side, in one run, on one machine, by\n\n")
	w("```\n%s\n```\n\n", c.command)
	w("| | |\n|---|---|\n")
	w("| date | %s |\n", r.started.Format("2006-01-02 15:04 MST"))
	w("| machine | %d CPUs (nproc), %s, %s memory, %s |\n", r.machine.cpus, r.machine.cpuModel, r.machine.memory, r.machine.kernel)
	w("| Go | %s |\n", goVersion())
	w("| moat | %s, `moat serve --insecure-http --log-level warn`, bearer token on every request |\n", orUnknown(c.moatVersion))
	w("| Distribution | %s (`registry serve`), filesystem storage, in-memory blob descriptor cache, no auth, log level warn |\n", c.distVersion)
	w("| storage | both registries and the write bound in temporary directories on the same disk |\n")
	w("| run time | %s |\n\n", r.elapsed.Round(time.Second))
	w("The client, moat and Distribution share the machine's CPUs; all traffic is plain HTTP over\n")
	w("loopback. MB/s is 10⁶ bytes per second. Each registry gets the same requests, interleaved\n")
	w("(the order alternates between repetitions).\n\n")
	w("The sections *Scale-out* and *Network rules* at the end come from separate runs\n")
	w("(`./scripts/bench.sh --scaleout`, `--firewall`), each with its own date and command.\n\n")

	w("## Targets (DESIGN.md §7, registry core)\n\n")
	w("| target | measured | met |\n|---|---|---|\n")
	for _, v := range r.verdicts() {
		mark := "**not met**"
		if v.met {
			mark = "met"
		}
		w("| %s | %s | %s |\n", v.target, v.measured, mark)
	}
	w("\n")

	w("## The machine's bound\n\n")
	w("What this machine can do for a pushed blob without network or protocol, measured in-process\n")
	w("on %s (best of two runs):\n\n", sizeLabel(r.bound.size))
	w("| | MB/s |\n|---|---:|\n")
	w("| sha256 (one core) | %.0f |\n", r.bound.sha256.mbps())
	w("| sequential write in 1 MiB writes + fsync | %.0f |\n", r.bound.write.mbps())
	w("| **bound**: sha256 and write of each 1 MiB chunk in one pass + fsync | **%.0f** |\n\n", r.bound.hashWrite.mbps())
	w("A registry must hash and durably write every pushed byte, so push throughput is compared with\n")
	w("the one-pass bound. Each write is timed twice, once plain and once asking the kernel to start\n")
	w("writeback every 8 MiB (`sync_file_range`), and the faster counts: the bound is the disk at its\n")
	w("best. Every timed write and every timed push starts after `sync(2)`, untimed, so none pays for\n")
	w("the writeback of an earlier one (Distribution does not fsync: without it, its pushes' pages\n")
	w("would be written back during moat's next push).\n\n")
	w("This disk's sustained rate drifts by 2× from one minute to the next, so the push table's\n")
	w("\"moat / bound\" column does not use this figure: it divides by the bound measured again, the same\n")
	w("way, right after every repetition of the row (the \"bound MB/s\" column).\n\n")

	w("## Blob push\n\n")
	w("Monolithic is POST then one PUT with the body. Streamed is POST, one PATCH with the whole body\n")
	w("(no `Content-Range`), then an empty PUT with the digest: how crane and skopeo push a layer.\n")
	w("Chunked is POST, PATCH in %s chunks with `Content-Range`, then an empty PUT with the digest.\n", sizeLabel(c.chunk))
	w("Each repetition pushes new content; time is from the POST to the 201.\n\n")
	w("| size | mode | reps | moat MB/s | Distribution MB/s | bound MB/s | moat / Distribution | moat / bound | moat / bound, each repetition |\n")
	w("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range r.push {
		m, d, b := p.by[nameMoat].mbps(), p.by[nameDist].mbps(), r.rowBound(p)
		w("| %s | %s | %d | %.0f | %.0f | %.0f | %.2f | %.2f | %s |\n", sizeLabel(p.size), p.mode, p.reps, m, d, b, ratio(m, d), ratio(m, b), spread(p.boundRatios))
	}
	w("\n")
	w("The MB/s columns and the ratios between them are totals over the row's repetitions (bytes over\n")
	w("time). The last column pairs each of moat's pushes with the bound measured right after it, and\n")
	w("gives the lowest, the median and the highest of those ratios. The targets table uses that\n")
	w("median: a disk stall during one bound measurement lowers the row's total bound, and so raises\n")
	w("its total ratio, but moves the median by one place at most.\n\n")

	w("## Blob pull\n\n")
	w("GET of a pushed blob, body read and discarded by the client. Data in the page cache for both:\n")
	w("each registry's copy is read once, untimed, before the timed pulls, because moat drops what it\n")
	w("writes from the page cache once it is durable (drop-behind, see the README) and Distribution\n")
	w("does not, so the first pull of a fresh blob reads moat's copy from the disk.\n\n")
	w("| size | reps | moat MB/s | Distribution MB/s | moat / Distribution |\n|---|---:|---:|---:|---:|\n")
	for _, p := range r.pull {
		m, d := p.by[nameMoat].mbps(), p.by[nameDist].mbps()
		w("| %s | %d | %.0f | %.0f | %.2f |\n", sizeLabel(p.size), p.reps, m, d, ratio(m, d))
	}
	w("\n")

	w("## Manifest GET and HEAD\n\n")
	w("By tag, with the Accept header docker sends, for %s per cell after a short warm-up; keep-alive\n", c.loadDuration)
	w("connections, one per concurrent client.\n\n")
	w("| method | concurrency | moat req/s | moat p50 | moat p99 | Distribution req/s | Distribution p50 | Distribution p99 | moat / Distribution |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, mr := range r.manifests {
		m, d := mr.by[nameMoat], mr.by[nameDist]
		w("| %s | %d | %.0f | %s | %s | %.0f | %s | %s | %.2f |\n", mr.method, mr.concurrency,
			m.rps(), ms(m.p50), ms(m.p99), d.rps(), ms(d.p50), ms(d.p99), ratio(m.rps(), d.rps()))
	}
	w("\n")

	w("## Tags list\n\n")
	w("A repository with %d tags. The full listing follows `Link` headers until the end; the page is\n", r.tags.tags)
	w("`?n=100`. Medians of 7 runs. Creating the tags is %d manifest PUTs, 8 at a time.\n\n", r.tags.tags)
	m, d := r.tags.by[nameMoat], r.tags.by[nameDist]
	w("| | moat | Distribution | moat / Distribution (speed) |\n|---|---:|---:|---:|\n")
	w("| full listing | %s (%s) | %s (%s) | %.2f |\n", ms(m.full), plural(m.pages, "request"), ms(d.full), plural(d.pages, "request"), ratio(d.full.Seconds(), m.full.Seconds()))
	w("| first page of 100 | %s | %s | %.2f |\n", ms(m.first), ms(d.first), ratio(d.first.Seconds(), m.first.Seconds()))
	w("| creating the tags | %s | %s | %.2f |\n", m.create.Round(time.Millisecond), d.create.Round(time.Millisecond), ratio(d.create.Seconds(), m.create.Seconds()))
	w("\n")
	return b.String()
}

// spread is "lowest / median / highest" of rs, or "–" if there are none.
func spread(rs []float64) string {
	if len(rs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", slices.Min(rs), median(rs), slices.Max(rs))
}

// median is the middle of rs (the mean of the two middle ones for an even
// count); rs must not be empty.
func median(rs []float64) float64 {
	s := slices.Clone(rs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown version"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
