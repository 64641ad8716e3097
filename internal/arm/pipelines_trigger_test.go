package arm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/transfer"
)

// TestPipelines_TriggerStatusOnGet: an import pipeline whose source
// directory disappears answers, on GET and in the list, the read-only
// properties.moatSourceTrigger with state Failing and the error; a PUT
// cannot set it.
func TestPipelines_TriggerStatusOnGet(t *testing.T) {
	e := newPipelineEnv(t)
	dir := filepath.Join(t.TempDir(), "watch")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := regPath + "pipes01/importPipelines/watch01"
	e.want(e.do("PUT", path, pipeAPI, `{"properties":{"source":{"type":"AzureStorageBlobContainer","uri":"file://`+dir+`"},`+
		`"trigger":{"sourceTrigger":{"status":"Enabled"}},"moatSourceTrigger":{"state":"Healthy"}}}`), 201, "", "")
	if r := e.do("GET", path, pipeAPI, ""); get(r.body, "properties.moatSourceTrigger") != nil {
		t.Fatalf("a trigger that never failed shows a status: %s", r.raw)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	worker := transfer.NewPipelines(transfer.PipelinesOptions{Meta: e.store, Poll: 20 * time.Millisecond, Lease: time.Second})
	done := make(chan struct{})
	go func() { defer close(done); worker.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.do("GET", path, pipeAPI, "")
		if get(r.body, "properties.moatSourceTrigger.state") == transfer.TriggerFailing {
			if msg, _ := get(r.body, "properties.moatSourceTrigger.lastError").(string); msg == "" || get(r.body, "properties.moatSourceTrigger.lastErrorTime") == nil {
				t.Fatalf("failing without the error: %s", r.raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET never showed the failing trigger: %s", r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list := e.do("GET", regPath+"pipes01/importPipelines", pipeAPI, "")
	items, _ := list.body["value"].([]any)
	if len(items) != 1 || get(items[0].(map[string]any), "properties.moatSourceTrigger.state") != transfer.TriggerFailing {
		t.Fatalf("list: %s", list.raw)
	}
}
