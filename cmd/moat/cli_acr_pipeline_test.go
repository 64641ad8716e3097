package main

import (
	"bytes"
	"testing"
)

func TestFormatRunBar(t *testing.T) {
	for _, c := range []struct {
		pct  int
		want string
	}{
		{0, "pipeline run: [..............................]   0%"},
		{50, "pipeline run: [###############...............]  50%"},
		{100, "pipeline run: [##############################] 100%"},
		{150, "pipeline run: [##############################] 100%"},
		{-3, "pipeline run: [..............................]   0%"},
	} {
		if got := formatRunBar(c.pct); got != c.want {
			t.Errorf("formatRunBar(%d) = %q, want %q", c.pct, got, c.want)
		}
	}
	var b bytes.Buffer
	bar := runBar(&b)
	bar(10, false)
	bar(10, false) // unchanged: not redrawn
	bar(90, false)
	bar(0, true)
	if got := b.String(); got != "\r"+formatRunBar(10)+"\x1b[K\r"+formatRunBar(90)+"\x1b[K\n" {
		t.Fatalf("bar output %q", got)
	}
}

func TestRunField(t *testing.T) {
	v := map[string]any{"properties": map[string]any{"provisioningState": "Failed",
		"response": map[string]any{"status": "Failed", "progress": map[string]any{"percentage": "40"}}}}
	if runField(v, "provisioningState") != "Failed" || runField(v, "response", "progress", "percentage") != "40" || runField(v, "response", "nope") != "" {
		t.Fatal("runField")
	}
}
