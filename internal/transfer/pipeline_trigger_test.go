package transfer

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTriggerStep(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	boom, other := errors.New("boom"), errors.New("other")
	failing := &triggerHealth{status: TriggerStatus{State: TriggerFailing, LastError: "boom", Since: t0}, logged: t0, message: "boom"}
	healthy := &triggerHealth{status: TriggerStatus{State: TriggerHealthy, Since: t0}}
	for _, c := range []struct {
		name         string
		prev         *triggerHealth
		err          error
		at           time.Duration
		state        string
		logIt, store bool
		lastErr      string
	}{
		{"first poll works", nil, nil, 0, TriggerHealthy, false, true, ""},
		{"first poll fails", nil, boom, 0, TriggerFailing, true, true, "boom"},
		{"still healthy", healthy, nil, time.Hour, TriggerHealthy, false, false, ""},
		{"starts failing", healthy, boom, time.Second, TriggerFailing, true, true, "boom"},
		{"same failure within a minute", failing, boom, 3 * time.Second, TriggerFailing, false, false, "boom"},
		{"same failure after a minute", failing, boom, time.Minute, TriggerFailing, true, false, "boom"},
		{"another failure within a minute", failing, other, 3 * time.Second, TriggerFailing, false, true, "other"},
		{"recovers", failing, nil, 3 * time.Second, TriggerHealthy, true, true, "boom"},
	} {
		t.Run(c.name, func(t *testing.T) {
			next, logIt, store := triggerStep(c.prev, c.err, t0.Add(c.at))
			if next.status.State != c.state || logIt != c.logIt || store != c.store || next.status.LastError != c.lastErr {
				t.Fatalf("got state %s log %v store %v lastError %q; want %s %v %v %q",
					next.status.State, logIt, store, next.status.LastError, c.state, c.logIt, c.store, c.lastErr)
			}
		})
	}
}

// TestTriggerUnreachableSourceLogsOnce polls a trigger whose directory is
// missing many times: one warning, the error stored for the pipeline's GET,
// and once the directory exists, one "works again" and state Healthy with
// the last error kept.
func TestTriggerUnreachableSourceLogsOnce(t *testing.T) {
	e := newPipeEnv(t)
	var logs bytes.Buffer
	e.p.log = slog.New(slog.NewTextHandler(&logs, nil))
	dir := filepath.Join(t.TempDir(), "later")
	props := PipelineProps{Source: &StorageProps{Type: StorageTypeBlobContainer, URI: "file://" + dir}, Trigger: &TriggerProps{}}
	props.Trigger.SourceTrigger = &struct {
		Status string `json:"status"`
	}{TriggerEnabled}
	id := e.putPipeline(ImportPipelineType, "watch", props)
	for range 20 {
		if err := e.p.pollTriggers(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "source trigger failing"); n != 1 {
		t.Fatalf("%d warnings for 20 failed polls, want 1:\n%s", n, logs.String())
	}
	st, err := TriggerStatusOf(e.ctx, e.s, id)
	if err != nil || st == nil || st.State != TriggerFailing || !strings.Contains(st.LastError, "later") || st.LastErrorTime == nil {
		t.Fatalf("stored status %+v, %v", st, err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := e.p.pollTriggers(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "works again"); n != 1 {
		t.Fatalf("%d recoveries logged, want 1:\n%s", n, logs.String())
	}
	st, err = TriggerStatusOf(e.ctx, e.s, id)
	if err != nil || st == nil || st.State != TriggerHealthy || !strings.Contains(st.LastError, "later") {
		t.Fatalf("stored status after recovery %+v, %v", st, err)
	}

	// Another worker (a replica taking the lease) that only sees it work
	// leaves the stored status alone, and does not log.
	logs.Reset()
	e.p.trig = map[string]*triggerHealth{}
	if err := e.p.pollTriggers(e.ctx); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Fatalf("a healthy first poll logged:\n%s", logs.String())
	}
}
