package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/dataplane"
	"github.com/moat-registry/moat/internal/replica"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// background runs the work a replica does besides serving: following other
// replicas' configuration changes, and the upload purge, which runs on one
// replica at a time under a lease. Stop cancels it and waits; call it before
// the stores close.
type background struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// purgeLease is how long the upload purge's lease lasts without renewal: a
// dead holder's work resumes on another replica after about this long.
const purgeLease = 30 * time.Second

func startBackground(ctx context.Context, store meta.Store, plane *dataplane.Handler, uploadTTL time.Duration, logger *slog.Logger,
	onChange ...func()) *background {
	ctx, cancel := context.WithCancel(ctx)
	b := &background{cancel: cancel}
	if feed, ok := store.(meta.ChangeFeed); ok {
		fan := replica.NewFanout(feed, replica.WithLogger(logger))
		fan.Handle(meta.TopicRegistry, plane.Invalidate)
		fan.OnResync(plane.InvalidateAll)
		for _, f := range onChange { // e.g. the private endpoint listeners
			fan.Handle(meta.TopicRegistry, func(string) { f() })
			fan.OnResync(f)
		}
		b.wg.Go(func() { fan.Run(ctx) })
		select {
		case <-fan.Ready():
		case <-time.After(5 * time.Second):
			logger.Warn("not yet following other replicas' changes; they are seen within the cache TTL meanwhile")
		}
	}
	work := func(c context.Context) { purgeLoop(c, plane, uploadTTL, logger) }
	b.wg.Go(func() {
		l, ok := store.(meta.Leaser)
		if !ok {
			work(ctx)
			return
		}
		if err := replica.RunExclusive(ctx, l, "upload-purge", purgeLease, work,
			replica.WithHolder(replica.NewHolderID()), replica.WithLogger(logger)); err != nil {
			logger.Error("upload purge", "error", err)
		}
	})
	return b
}

func (b *background) stop() {
	b.cancel()
	b.wg.Wait()
}

// announceRegistryChange returns the management plane's OnRegistryChange:
// this replica's cache is invalidated at once, the others through the change
// feed (within a second). The change is already committed, so a client that
// disconnects must not cancel the announcement.
func announceRegistryChange(store meta.Store, plane *dataplane.Handler, logger *slog.Logger) func(context.Context, string) {
	feed, _ := store.(meta.ChangeFeed)
	return func(ctx context.Context, name string) {
		plane.Invalidate(name)
		if feed == nil {
			return
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := feed.Publish(pctx, meta.TopicRegistry, strings.ToLower(name)); err != nil {
			logger.Error("announcing a registry change to other replicas failed; they see it within the cache TTL",
				"registry", name, "error", err)
		}
	}
}
