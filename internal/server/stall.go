package server

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// DefaultBodyStallTimeout is how long a request body may send nothing
// before the read fails.
const DefaultBodyStallTimeout = time.Minute

// stallGuard fails a request body read that waits longer than timeout for
// the next byte. There is no whole-request timeout (a blob may take an hour
// to push), so without it a client that opens a body and goes silent holds a
// goroutine and a connection for ever. The read deadline is moved forward
// as bytes arrive, at most every timeout/4, so a fast upload costs a handful
// of deadline updates, not one per read.
//
// The deadline is never cleared here: at the end of the body net/http
// clears it itself before its background read (which would otherwise take
// an expired deadline for a closed connection and cancel a request still
// finishing its work); after a stall it stays in the past, so what is left
// of the body is not waited for and the connection is closed.
type stallGuard struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	setAt   time.Time // when the deadline was last moved; zero: never
	off     bool      // the writer supports no deadlines
}

func newStallGuard(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration) *stallGuard {
	return &stallGuard{body: body, rc: http.NewResponseController(w), timeout: timeout}
}

func (g *stallGuard) Read(p []byte) (int, error) {
	if !g.off {
		if now := time.Now(); g.setAt.IsZero() || now.Sub(g.setAt) >= g.timeout/4 {
			// Only a writer without a connection (a test recorder) cannot
			// set deadlines; real connections always can.
			if err := g.rc.SetReadDeadline(now.Add(g.timeout)); errors.Is(err, http.ErrNotSupported) {
				g.off = true
			}
			g.setAt = now
		}
	}
	return g.body.Read(p)
}

func (g *stallGuard) Close() error { return g.body.Close() }
