package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stallPlane reads each request's body to the end, reports what it read and
// the error, then (for /v2/linger) outlives the stall timeout before
// answering.
type stallPlane struct{ reads chan string }

func (p stallPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	p.reads <- fmt.Sprintf("%q %v", b, err)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.URL.Path == "/v2/linger" {
		select {
		case <-time.After(600 * time.Millisecond):
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = io.WriteString(w, "done")
}

func startStallServer(t *testing.T) (string, chan string) {
	t.Helper()
	reads := make(chan string, 4)
	s := newServer(t, Config{BodyStallTimeout: 300 * time.Millisecond}, stallPlane{reads})
	ln := listenLoopback(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), reads
}

// sendSlowly writes a request whose 10-byte body arrives one byte every
// gap, and returns the status line of the answer.
func sendSlowly(t *testing.T, addr, path string, gap time.Duration, sendAll bool) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: moat\r\nContent-Length: 10\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	n := 10
	if !sendAll {
		n = 3
	}
	for i := range n {
		if _, err := c.Write([]byte{'a' + byte(i)}); err != nil {
			break // the server gave up on us: the answer tells
		}
		time.Sleep(gap)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "no answer: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func TestBodyStallTimeout(t *testing.T) {
	addr, reads := startStallServer(t)

	t.Run("a silent body fails", func(t *testing.T) {
		start := time.Now()
		status := sendSlowly(t, addr, "/v2/x", 0, false)
		got := <-reads
		if !strings.Contains(got, "timeout") || time.Since(start) > 5*time.Second {
			t.Fatalf("read %s after %s", got, time.Since(start))
		}
		if !strings.Contains(status, "400") {
			t.Fatalf("answer %q", status)
		}
	})
	t.Run("a slow but steady body is read whole", func(t *testing.T) {
		// 10 bytes 100 ms apart take a second, longer than the stall
		// timeout: only the gaps count.
		status := sendSlowly(t, addr, "/v2/x", 100*time.Millisecond, true)
		if got := <-reads; got != `"abcdefghij" <nil>` {
			t.Fatalf("read %s", got)
		}
		if !strings.Contains(status, "200") {
			t.Fatalf("answer %q", status)
		}
	})
	t.Run("work after the body is not cut off", func(t *testing.T) {
		status := sendSlowly(t, addr, "/v2/linger", 0, true)
		if got := <-reads; got != `"abcdefghij" <nil>` {
			t.Fatalf("read %s", got)
		}
		if !strings.Contains(status, "200") {
			t.Fatalf("a handler outliving the stall timeout after its body was cancelled: %q", status)
		}
	})
}
