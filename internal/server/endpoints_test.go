package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/clientip"
	"github.com/moat-registry/moat/internal/privatelink"
)

// freePort returns a TCP port free on 127.0.0.1 at the time of asking.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// echoArrival answers with the arrival and client address it was given.
var echoArrival = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	a, ok := privatelink.ArrivalFrom(r.Context())
	ip, _ := clientip.From(r.Context())
	if !ok {
		http.Error(w, "no arrival", http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, a.Registry+" "+a.EndpointID+" "+ip.String())
})

type fakeLoad struct {
	mu  sync.Mutex
	eps []privatelink.Endpoint
	err error
}

func (f *fakeLoad) set(err error, eps ...privatelink.Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eps, f.err = eps, err
}

func (f *fakeLoad) load(context.Context) ([]privatelink.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eps, f.err
}

func ep(id, reg, addr string) privatelink.Endpoint {
	return privatelink.Endpoint{ID: id, Registry: reg, Addr: netip.MustParseAddr(addr), Status: "Approved"}
}

// fetch GETs / on addr:port, returning the body or the dial error.
func fetch(addr string, port int) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(addr, strconv.Itoa(port)) + "/v2/")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestEndpointListeners_FollowTheStore(t *testing.T) {
	port := freePort(t)
	f := &fakeLoad{}
	m, err := NewEndpointListeners(EndpointConfig{Load: f.load, Data: echoArrival, Port: port, LoopbackOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	f.set(nil, ep("/pe/a", "rega", "127.0.0.77"), ep("/pe/b", "regb", "127.0.0.78"))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch("127.0.0.77", port); err != nil || got != "rega /pe/a 127.0.0.1" {
		t.Fatalf("127.0.0.77: %q, %v", got, err)
	}
	if got, err := fetch("127.0.0.78", port); err != nil || got != "regb /pe/b 127.0.0.1" {
		t.Fatalf("127.0.0.78: %q, %v", got, err)
	}
	if n := len(m.Addrs()); n != 2 {
		t.Fatalf("%d listeners", n)
	}

	// A failing store changes nothing.
	f.set(errors.New("store down"))
	if err := m.Sync(ctx); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("Sync with a failing store: %v", err)
	}
	if _, err := fetch("127.0.0.77", port); err != nil {
		t.Fatalf("a store failure closed a listener: %v", err)
	}

	// b goes, a moves to another endpoint id: b refuses connections, a is reopened.
	f.set(nil, ep("/pe/a2", "rega", "127.0.0.77"))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch("127.0.0.78", port); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("127.0.0.78 after its endpoint went: %v, want connection refused", err)
	}
	if got, err := fetch("127.0.0.77", port); err != nil || got != "rega /pe/a2 127.0.0.1" {
		t.Fatalf("127.0.0.77 after the change: %q, %v", got, err)
	}

	// Trigger: Run syncs by itself.
	f.set(nil)
	m.Trigger()
	deadline := time.Now().Add(5 * time.Second)
	for len(m.Addrs()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := fetch("127.0.0.77", port); err == nil {
		t.Fatal("127.0.0.77 still answers after Trigger")
	}
}

func TestEndpointListeners_RefusesWhatItCannotServe(t *testing.T) {
	port := freePort(t)
	f := &fakeLoad{}
	m, err := NewEndpointListeners(EndpointConfig{Load: f.load, Data: echoArrival, Port: port, LoopbackOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.shutdown)
	// Two endpoints on one address open nothing there; a non-loopback
	// address is refused with plain HTTP; the others open.
	f.set(nil, ep("/pe/a", "rega", "127.0.0.81"), ep("/pe/b", "regb", "127.0.0.81"), ep("/pe/c", "regc", "192.0.2.1"), ep("/pe/d", "regd", "127.0.0.82"))
	err = m.Sync(t.Context())
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1 is not a loopback address") {
		t.Fatalf("Sync: %v", err)
	}
	if _, err := fetch("127.0.0.81", port); err == nil {
		t.Fatal("a contested address is served")
	}
	if got, err := fetch("127.0.0.82", port); err != nil || !strings.HasPrefix(got, "regd ") {
		t.Fatalf("127.0.0.82: %q, %v", got, err)
	}
	// The address taken by someone else: an error, retried at the next Sync.
	other, err := net.Listen("tcp", net.JoinHostPort("127.0.0.83", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	f.set(nil, ep("/pe/e", "rege", "127.0.0.83"))
	if err := m.Sync(t.Context()); err == nil {
		t.Fatal("Sync opened a taken address")
	}
	_ = other.Close()
	if err := m.Sync(t.Context()); err != nil {
		t.Fatalf("Sync after the address was freed: %v", err)
	}
	if got, err := fetch("127.0.0.83", port); err != nil || !strings.HasPrefix(got, "rege ") {
		t.Fatalf("127.0.0.83: %q, %v", got, err)
	}

	for _, c := range []EndpointConfig{{Data: echoArrival, Port: 1}, {Load: f.load, Port: 1}, {Load: f.load, Data: echoArrival}} {
		if _, err := NewEndpointListeners(c); err == nil {
			t.Errorf("NewEndpointListeners(%+v) accepted", c)
		}
	}
}
