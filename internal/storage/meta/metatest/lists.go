package metatest

import (
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// Names whose byte order differs from a case-insensitive or locale-aware
// order: upper case before lower, '-' (0x2d) before '.' before '/' before
// digits before '_' (0x5f) before letters.
var (
	tagNames  = []string{"latest", "Latest", "v1.0", "v1-0", "v1_0", "v10", "v9", "1", "_x", "a", "B", "b", "LATEST"}
	repoNames = []string{"app", "app-x", "app.x", "app/x", "app/x/y", "app0", "app_x", "App", "b", "a/b"}
)

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out) // byte order
	return out
}

// pages reads everything through list with page size n, checking that each
// page is non-empty and at most n long.
func pages(e *env, what string, n int, list func(last string, n int) ([]string, error)) []string {
	e.t.Helper()
	var all []string
	last := ""
	for i := 0; ; i++ {
		page, err := list(last, n)
		if err != nil {
			e.t.Fatalf("%s page %d (last %q, n %d): %v", what, i, last, n, err)
		}
		if len(page) > n {
			e.t.Fatalf("%s page %d has %d entries, want at most %d", what, i, len(page), n)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		last = page[len(page)-1]
		if i > 100 {
			e.t.Fatalf("%s: pagination does not end", what)
		}
	}
}

var listChecks = []check{
	{"Tags/ByteOrderAndPagination", func(e *env) {
		e.registry("r")
		m := e.image("r", "app", "1")
		for _, tag := range tagNames {
			e.put(m, tag)
		}
		want := sorted(tagNames)
		got, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags", got, err, want...)
		got, err = e.s.ListTags(e.ctx, "r", "app", "", -1)
		e.wantStrings("ListTags(n=-1)", got, err, want...)
		for _, n := range []int{1, 2, 5, len(want), len(want) + 1} {
			list := func(last string, n int) ([]string, error) { return e.s.ListTags(e.ctx, "r", "app", last, n) }
			e.wantStrings(fmt.Sprintf("ListTags in pages of %d", n), pages(e, "ListTags", n, list), nil, want...)
		}
		got, err = e.s.ListTags(e.ctx, "r", "app", want[2], 3)
		e.wantStrings("ListTags after "+want[2], got, err, want[3:6]...)
		// last need not be a tag.
		got, err = e.s.ListTags(e.ctx, "r", "app", "v1", 0)
		e.wantStrings("ListTags after v1", got, err, "v1-0", "v1.0", "v10", "v1_0", "v9")
		got, err = e.s.ListTags(e.ctx, "r", "app", want[len(want)-1], 0)
		e.wantStrings("ListTags after the last tag", got, err)

		_, err = e.s.ListTags(e.ctx, "r", "nope", "", 0)
		e.wantErr("ListTags of a repository that does not exist", err, meta.ErrNotFound)
		_, err = e.s.ListTags(e.ctx, "nope", "app", "", 0)
		e.wantErr("ListTags in a registry that does not exist", err, meta.ErrNotFound)
		e.registry("s")
		e.blob("s", "app", "x")
		got, err = e.s.ListTags(e.ctx, "s", "app", "", 0)
		e.wantStrings("ListTags of the same repository name in another registry", got, err)
	}},
	{"Repositories/ByteOrderAndPagination", func(e *env) {
		e.registry("r")
		e.registry("s")
		for _, repo := range repoNames {
			e.blob("r", repo, "x")
		}
		e.blob("s", "zzz", "x")
		want := sorted(repoNames)
		got, err := e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories", got, err, want...)
		for _, n := range []int{1, 3, len(want)} {
			list := func(last string, n int) ([]string, error) { return e.s.ListRepositories(e.ctx, "r", last, n) }
			e.wantStrings(fmt.Sprintf("ListRepositories in pages of %d", n), pages(e, "ListRepositories", n, list), nil, want...)
		}
		got, err = e.s.ListRepositories(e.ctx, "r", "app/x", 2)
		e.wantStrings("ListRepositories after app/x", got, err, "app/x/y", "app0")
		got, err = e.s.ListRepositories(e.ctx, "nope", "", 0)
		e.wantStrings("ListRepositories of a registry that does not exist", got, err)
	}},
	{"Referrers/ListAndFilter", func(e *env) {
		e.registry("r")
		e.registry("s")
		subject := e.image("r", "app", "subject")
		e.put(subject, "v1")
		sig := e.blob("r", "app", "signature")
		var refs []meta.Manifest
		for i, at := range []string{"application/vnd.example.sig", "application/vnd.example.sbom", "application/vnd.example.sig"} {
			m := manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{sig}, subject: subject.Digest,
				artifactType: at, annotations: map[string]string{"n": fmt.Sprint(i)}, nonce: fmt.Sprint("ref", i)})
			e.put(m, "")
			refs = append(refs, m)
		}
		// An image manifest without artifactType reports its config media type.
		plain := manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{sig}, subject: subject.Digest, nonce: "plain"})
		e.put(plain, "")
		refs = append(refs, plain)
		// Referrers elsewhere: another subject, repository and registry.
		e.put(manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{sig}, subject: refs[0].Digest,
			artifactType: "application/vnd.example.sig", nonce: "of a referrer"}), "")
		e.blob("r", "other", "signature")
		e.put(manifestOf(spec{reg: "r", repo: "other", blobs: []digest.Digest{sig}, subject: subject.Digest,
			artifactType: "application/vnd.example.sig", nonce: "other repo"}), "")
		e.blob("s", "app", "signature")
		e.put(manifestOf(spec{reg: "s", repo: "app", blobs: []digest.Digest{sig}, subject: subject.Digest,
			artifactType: "application/vnd.example.sig", nonce: "other registry"}), "")

		check := func(what string, got []meta.Manifest, err error, want []meta.Manifest) {
			e.t.Helper()
			if err != nil {
				e.t.Fatalf("%s: %v", what, err)
			}
			want = append([]meta.Manifest(nil), want...)
			sort.Slice(want, func(i, j int) bool { return want[i].Digest < want[j].Digest })
			if len(got) != len(want) {
				e.t.Fatalf("%s: %d referrers, want %d", what, len(got), len(want))
			}
			for i := range want {
				if d := diffManifest(got[i], want[i], false); d != nil {
					e.t.Fatalf("%s[%d]: %v", what, i, d)
				}
			}
		}
		got, err := e.s.ListReferrers(e.ctx, "r", "app", subject.Digest, "")
		check("ListReferrers", got, err, refs)
		got, err = e.s.ListReferrers(e.ctx, "R", "app", subject.Digest, "application/vnd.example.sig")
		check("ListReferrers(sig)", got, err, []meta.Manifest{refs[0], refs[2]})
		got, err = e.s.ListReferrers(e.ctx, "r", "app", subject.Digest, mediaTypeConfig)
		check("ListReferrers(config media type)", got, err, []meta.Manifest{plain})
		got, err = e.s.ListReferrers(e.ctx, "r", "app", subject.Digest, "application/none")
		check("ListReferrers(unknown type)", got, err, nil)
		got, err = e.s.ListReferrers(e.ctx, "r", "app", digest.FromString("no such subject"), "")
		check("ListReferrers(unknown subject)", got, err, nil)
		got, err = e.s.ListReferrers(e.ctx, "r", "nope", subject.Digest, "")
		check("ListReferrers(unknown repository)", got, err, nil)
	}},
}
