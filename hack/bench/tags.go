package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const tagRepo = "bench/tags"

type tagsResult struct {
	tags int
	by   map[string]tagsTarget
}

type tagsTarget struct {
	// create is the time to create every tag, 8 PUTs at a time.
	create time.Duration
	// full is the median time to list every tag, following Link headers.
	full time.Duration
	// pages is how many requests one full listing took.
	pages int
	// first is the median time of one page of n=100.
	first time.Duration
}

func benchTags(ctx context.Context, c config, targets []*target) (tagsResult, error) {
	res := tagsResult{tags: c.tagCount, by: map[string]tagsTarget{}}
	for _, t := range targets {
		if err := t.authorize(ctx, tagRepo); err != nil {
			return res, err
		}
		m, err := testManifest(ctx, t, tagRepo)
		if err != nil {
			return res, err
		}
		start := time.Now()
		if err := createTags(ctx, t, m, c.tagCount, 8); err != nil {
			return res, err
		}
		res.by[t.name] = tagsTarget{create: time.Since(start)}
		slog.Info("tags created", "target", t.name, "tags", c.tagCount, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	const runs = 7
	full := map[string][]time.Duration{}
	first := map[string][]time.Duration{}
	pages := map[string]int{}
	for rep := 0; rep < runs; rep++ {
		for _, t := range alternate(targets, rep) {
			start := time.Now()
			n, p, err := listAllTags(ctx, t, tagRepo, "")
			if err != nil {
				return res, err
			}
			if n != c.tagCount {
				return res, fmt.Errorf("%s listed %d tags, want %d", t.name, n, c.tagCount)
			}
			full[t.name] = append(full[t.name], time.Since(start))
			pages[t.name] = p

			start = time.Now()
			n, err = listTagsPage(ctx, t, tagRepo, "/v2/"+tagRepo+"/tags/list?n=100")
			if err != nil {
				return res, err
			}
			if n != 100 {
				return res, fmt.Errorf("%s: a page of n=100 has %d tags", t.name, n)
			}
			first[t.name] = append(first[t.name], time.Since(start))
		}
	}
	for _, t := range targets {
		r := res.by[t.name]
		slices.Sort(full[t.name])
		slices.Sort(first[t.name])
		r.full = percentile(full[t.name], 50)
		r.first = percentile(first[t.name], 50)
		r.pages = pages[t.name]
		res.by[t.name] = r
		slog.Info("tags list", "target", t.name, "full", r.full, "pages", r.pages, "first page", r.first)
	}
	return res, nil
}

// createTags tags manifest m as t00000…, conc PUTs at a time.
func createTags(ctx context.Context, t *target, m []byte, count, conc int) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				if err := putManifest(ctx, t, tagRepo, fmt.Sprintf("t%05d", i), m); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// listAllTags lists every tag of repo, following Link headers; it returns
// the number of tags and of requests.
func listAllTags(ctx context.Context, t *target, repo, query string) (tags, pages int, err error) {
	path := "/v2/" + repo + "/tags/list" + query
	for path != "" {
		if pages > 10000 {
			return 0, 0, fmt.Errorf("%s: more than 10000 pages of tags", t.name)
		}
		req, err := t.newRequest(ctx, http.MethodGet, repo, path, nil)
		if err != nil {
			return 0, 0, err
		}
		resp, err := t.do(req, http.StatusOK)
		if err != nil {
			return 0, 0, err
		}
		var tl struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tl)
		drain(resp)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: tags list: %w", t.name, err)
		}
		tags += len(tl.Tags)
		pages++
		path = ""
		if next := nextLink(resp.Header.Get("Link")); next != "" {
			u, err := resp.Request.URL.Parse(next)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: Link %q: %w", t.name, next, err)
			}
			path = u.String()
		}
	}
	return tags, pages, nil
}

func listTagsPage(ctx context.Context, t *target, repo, path string) (int, error) {
	req, err := t.newRequest(ctx, http.MethodGet, repo, path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := t.do(req, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		return 0, fmt.Errorf("%s: tags list: %w", t.name, err)
	}
	return len(tl.Tags), nil
}
