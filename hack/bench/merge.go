package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// BENCHMARKS.md is written by several modes of this driver (the comparison
// with Distribution, scale-out, network rules), each run on its own: a
// mode replaces only the sections it owns and keeps every other section of
// the existing file, so running one mode never erases another's figures.
// Sections are the file's level-2 headings ("## …"); everything before the
// first one is the preamble, which belongs to the comparison mode.

const (
	modeCompare  = "compare"
	modeScaleout = "scaleout"
	modeFirewall = "firewall"
)

const (
	titleScaleout = "Scale-out"
	titleFirewall = "Network rules"
)

// compareTitles are the sections the comparison mode writes.
var compareTitles = []string{
	"Targets (DESIGN.md §7, registry core)",
	"The machine's bound",
	"Blob push",
	"Blob pull",
	"Manifest GET and HEAD",
	"Tags list",
}

// handTitles are sections written by hand from a `go test -bench` run that
// the section itself names, not by the driver; every mode keeps them as
// they are.
var handTitles = []string{"Large pushes: what changed, what is left", "Manifest lookups: what changed", "Import within a deployment", "Import from another registry", "Export run (transfer pipelines)"}

// modeOrder is the order of the modes' sections in the file; sections no
// mode knows come last, in the order they had.
var modeOrder = []string{modeCompare, modeScaleout, modeFirewall}

// sectionMode returns the mode that owns a section title, or "".
func sectionMode(title string) string {
	switch {
	case slices.Contains(compareTitles, title):
		return modeCompare
	case title == titleScaleout:
		return modeScaleout
	case title == titleFirewall:
		return modeFirewall
	}
	return ""
}

type section struct {
	title string
	text  string // from the heading line to the next section, trailing newlines kept
}

type document struct {
	preamble string
	sections []section
}

// parseDocument splits markdown at its level-2 headings, ignoring lines
// inside fenced code blocks.
func parseDocument(md string) document {
	var d document
	cur := -1 // index into d.sections; -1 is the preamble
	var b strings.Builder
	flush := func() {
		if cur < 0 {
			d.preamble = b.String()
		} else {
			d.sections[cur].text = b.String()
		}
		b.Reset()
	}
	fenced := false
	for _, line := range strings.SplitAfter(md, "\n") {
		if line == "" {
			continue
		}
		trimmed := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(trimmed, "```") {
			fenced = !fenced
		}
		if title, ok := strings.CutPrefix(trimmed, "## "); ok && !fenced {
			flush()
			d.sections = append(d.sections, section{title: strings.TrimSpace(title)})
			cur = len(d.sections) - 1
		}
		b.WriteString(line)
	}
	flush()
	return d
}

func (d document) String() string {
	var b strings.Builder
	b.WriteString(d.preamble)
	for _, s := range d.sections {
		text := s.text
		if !strings.HasSuffix(text, "\n\n") {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		b.WriteString(text)
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// mergeDocument returns old with the sections of mode replaced by fresh's
// (and, for the comparison mode, its preamble). Sections of other modes and
// unknown sections stay as they were.
func mergeDocument(old, fresh document, mode string) document {
	out := document{preamble: old.preamble}
	switch {
	case mode == modeCompare:
		out.preamble = fresh.preamble
	case strings.TrimSpace(old.preamble) == "":
		// A new file written by another mode first: a title until the
		// comparison mode writes its preamble.
		out.preamble = "# Benchmarks\n\n"
	}
	rank := func(m string) int {
		if i := slices.Index(modeOrder, m); i >= 0 {
			return i
		}
		return len(modeOrder)
	}
	for _, s := range old.sections {
		if sectionMode(s.title) != mode {
			out.sections = append(out.sections, s)
		}
	}
	out.sections = append(out.sections, fresh.sections...)
	slices.SortStableFunc(out.sections, func(a, b section) int {
		return rank(sectionMode(a.title)) - rank(sectionMode(b.title))
	})
	return out
}

// writeMerged merges fresh into the report at path (created if missing)
// and writes it back through a temporary file, so that a failed write never
// leaves half a report.
func writeMerged(path, fresh, mode string) (string, error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	merged := mergeDocument(parseDocument(string(old)), parseDocument(fresh), mode).String()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("creating the report's directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-report-*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	if _, err := tmp.WriteString(merged); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { //nolint:gosec // a report in the repository, meant to be read
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return merged, nil
}
