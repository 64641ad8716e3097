package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// releaseTimeout bounds the Release on the way out, which runs after the
// caller's context is done.
const releaseTimeout = 5 * time.Second

// Option configures RunExclusive and Fanout.
type Option func(*options)

type options struct {
	holder string
	log    *slog.Logger
}

// WithHolder names this process as a lease holder; it must differ between
// replicas. The default is NewHolderID's.
func WithHolder(id string) Option { return func(o *options) { o.holder = id } }

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func applyOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o
}

// NewHolderID returns an id for this process that no other process shares:
// host name and pid, for whoever reads the leases table, and random bytes,
// because pids repeat across containers.
func NewHolderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [6]byte
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(b[:])
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
}

// RunExclusive runs fn while this process holds the lease called name, and
// only then, until ctx is done: replicas that call it with the same name
// run fn one at a time. fn's context is canceled when ctx is done or the
// lease is lost (another holder took it, or renewing failed for too long);
// RunExclusive then waits for fn to return and, if ctx is not done, tries
// to take the lease again. It renews the lease every ttl/3, and a replica
// without it tries to take it just as often, so a dead holder's work
// resumes elsewhere within about ttl + ttl/3.
//
// If fn returns by itself while holding the lease, RunExclusive releases
// the lease and returns nil: fn is meant to be the whole periodic loop. It
// returns an error only for invalid arguments; store errors are logged and
// retried.
func RunExclusive(ctx context.Context, l meta.Leaser, name string, ttl time.Duration, fn func(ctx context.Context), opts ...Option) error {
	switch {
	case l == nil || fn == nil:
		return errors.New("replica: RunExclusive needs a leaser and a function")
	case name == "":
		return errors.New("replica: RunExclusive needs a lease name")
	case ttl < 3*time.Millisecond:
		return fmt.Errorf("replica: lease ttl %v is too short", ttl)
	}
	o := applyOptions(opts)
	if o.holder == "" {
		o.holder = NewHolderID()
	}
	e := &exclusive{l: l, name: name, holder: o.holder, ttl: ttl, every: ttl / 3, fn: fn,
		log: o.log.With("lease", name, "holder", o.holder)}
	return e.run(ctx)
}

type exclusive struct {
	l            meta.Leaser
	name, holder string
	ttl, every   time.Duration
	fn           func(context.Context)
	log          *slog.Logger
	errs         failureLog
}

func (e *exclusive) run(ctx context.Context) error {
	for {
		sent := time.Now()
		ok, err := e.l.Acquire(ctx, e.name, e.holder, e.ttl)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			e.errs.fail(e.log, "acquiring the lease failed; trying again", err)
		case ok:
			e.errs.ok(e.log, "the lease store works again")
			e.log.Info("lease acquired; running its work here")
			if finished := e.hold(ctx, sent.Add(e.ttl)); finished {
				return nil
			}
			continue // lost: try to take it again at once
		default:
			e.errs.ok(e.log, "the lease store works again")
		}
		if !sleep(ctx, e.every) {
			return nil
		}
	}
}

// hold runs fn and renews the lease until fn returns. It reports whether
// the work is finished (ctx done or fn returned by itself) rather than the
// lease lost. deadline is when the lease may have expired on the store, by
// this process's clock: it is counted from before each successful
// Acquire or Renew was sent, so it is never later than the store's expiry.
func (e *exclusive) hold(ctx context.Context, deadline time.Time) bool {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.fn(fctx)
	}()
	tick := time.NewTicker(e.every)
	defer tick.Stop()
	lost := false
	for {
		select {
		case <-done:
			if lost {
				return ctx.Err() != nil
			}
			e.release()
			if ctx.Err() == nil {
				e.log.Info("the lease's work returned; lease released")
			}
			return true
		case <-ctx.Done():
			stop()
			<-done
			e.release()
			return true
		case <-tick.C:
			if lost {
				continue // waiting for fn to return
			}
			if !e.renew(ctx, &deadline) {
				lost = true
				stop()
			}
		}
	}
}

// renew extends the lease and moves deadline; it reports false when the
// lease is lost or may be lost before the next renewal.
func (e *exclusive) renew(ctx context.Context, deadline *time.Time) bool {
	sent := time.Now()
	// A renewal that hangs past the deadline is as good as a failed one.
	rctx, cancel := context.WithDeadline(ctx, *deadline)
	ok, err := e.l.Renew(rctx, e.name, e.holder, e.ttl)
	cancel()
	switch {
	case ctx.Err() != nil:
		return true // shutting down: hold sees ctx.Done next
	case err == nil && ok:
		e.errs.ok(e.log, "renewing the lease works again")
		*deadline = sent.Add(e.ttl)
		return true
	case err == nil:
		e.log.Warn("lease lost to another holder; stopping its work here")
		return false
	}
	if time.Now().Add(e.every).Before(*deadline) {
		e.errs.fail(e.log, "renewing the lease failed; trying again", err)
		return true
	}
	e.log.Error("renewing the lease failed until it may have expired; stopping its work here", "error", err)
	return false
}

func (e *exclusive) release() {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := e.l.Release(ctx, e.name, e.holder); err != nil {
		// Another replica takes over when the lease expires instead.
		e.log.Warn("releasing the lease failed; it expires by itself", "ttl", e.ttl, "error", err)
	}
}

// failureLog logs the first failure of a streak, and then at most every
// failureLogEvery, and the end of the streak.
type failureLog struct {
	failing bool
	last    time.Time
}

const failureLogEvery = 30 * time.Second

func (f *failureLog) fail(log *slog.Logger, msg string, err error) {
	if f.failing && time.Since(f.last) < failureLogEvery {
		return
	}
	f.failing, f.last = true, time.Now()
	log.Warn(msg, "error", err)
}

func (f *failureLog) ok(log *slog.Logger, msg string) {
	if f.failing {
		f.failing = false
		log.Info(msg)
	}
}
