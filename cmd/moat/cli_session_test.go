package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestLocationPolling follows a 202 with Location through a 202, a 503
// (keep polling, as the SDKs do) to the end, and refuses a Location on
// another host rather than send it the token.
func TestLocationPolling(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	var srvURL string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/resourcegroups/slow"):
			w.Header().Set("Location", srvURL+"/operations/1")
			w.Header().Set("retry-after-ms", "10")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/resourcegroups/elsewhere"):
			w.Header().Set("Location", "https://attacker.example/operations/1")
			w.WriteHeader(http.StatusAccepted)
		case r.URL.Path == "/operations/1":
			polls++
			w.Header().Set("retry-after-ms", "10")
			switch polls {
			case 1:
				w.WriteHeader(http.StatusAccepted)
			case 2:
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				w.WriteHeader(http.StatusOK)
			}
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"ResourceGroupNotFound","message":"no"}}`)
		}
	})
	srv := useFakeServer(t, h)
	srvURL = srv.URL
	if _, err := runCLI(t, "group", "delete", "-n", "slow", "--yes"); err != nil {
		t.Fatalf("group delete with a Location poll: %v", err)
	}
	mu.Lock()
	if polls != 3 {
		t.Errorf("polled %d times, want 3", polls)
	}
	mu.Unlock()
	if _, err := runCLI(t, "group", "delete", "-n", "elsewhere", "--yes"); err == nil || !strings.HasPrefix(err.Error(), "InvalidResponse: ") {
		t.Fatalf("a Location on another host: %v", err)
	}
}
