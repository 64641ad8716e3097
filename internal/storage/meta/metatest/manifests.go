package metatest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

var blobChecks = []check{
	{"Blobs/LinkStatUnlink", func(e *env) {
		e.registry("r")
		d := digest.FromString("layer")
		_, err := e.s.StatBlob(e.ctx, "r", "app", d)
		e.wantErr("StatBlob before link", err, meta.ErrNotFound)
		for range 2 { // linking twice is not an error
			if err := e.s.LinkBlob(e.ctx, "r", "app", d, 1234); err != nil {
				e.t.Fatalf("LinkBlob: %v", err)
			}
		}
		size, err := e.s.StatBlob(e.ctx, "r", "app", d)
		if err != nil || size != 1234 {
			e.t.Fatalf("StatBlob = %d, %v; want 1234", size, err)
		}
		// Linking created the repository, with no tags yet.
		repos, err := e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories", repos, err, "app")
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags", tags, err)

		if err := e.s.UnlinkBlob(e.ctx, "r", "app", d); err != nil {
			e.t.Fatalf("UnlinkBlob: %v", err)
		}
		_, err = e.s.StatBlob(e.ctx, "r", "app", d)
		e.wantErr("StatBlob after unlink", err, meta.ErrNotFound)
		err = e.s.UnlinkBlob(e.ctx, "r", "app", d)
		e.wantErr("UnlinkBlob again", err, meta.ErrNotFound)
		// The repository stays.
		repos, err = e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories after unlink", repos, err, "app")
	}},
	{"Blobs/ScopedToRepositoryAndRegistry", func(e *env) {
		e.registry("r1")
		e.registry("r2")
		d := e.blob("r1", "app", "layer")
		for _, at := range [][2]string{{"r1", "other"}, {"r2", "app"}, {"r1", "App"}, {"r1", "app/sub"}} {
			_, err := e.s.StatBlob(e.ctx, at[0], at[1], d)
			e.wantErr(fmt.Sprintf("StatBlob in %s/%s", at[0], at[1]), err, meta.ErrNotFound)
		}
		// The same digest in another registry is an independent link.
		if err := e.s.LinkBlob(e.ctx, "r2", "app", d, 5); err != nil {
			e.t.Fatalf("LinkBlob r2: %v", err)
		}
		if err := e.s.UnlinkBlob(e.ctx, "r2", "app", d); err != nil {
			e.t.Fatalf("UnlinkBlob r2: %v", err)
		}
		if _, err := e.s.StatBlob(e.ctx, "r1", "app", d); err != nil {
			e.t.Fatalf("StatBlob r1 after unlinking in r2: %v", err)
		}
		err := e.s.UnlinkBlob(e.ctx, "r1", "other", d)
		e.wantErr("UnlinkBlob where never linked", err, meta.ErrNotFound)
	}},
	{"Blobs/UnknownRegistry", func(e *env) {
		err := e.s.LinkBlob(e.ctx, "nope", "app", digest.FromString("x"), 1)
		e.wantErr("LinkBlob into a registry that does not exist", err, meta.ErrNotFound)
		e.registry("nope")
		repos, err := e.s.ListRepositories(e.ctx, "nope", "", 0)
		e.wantStrings("ListRepositories after the failed link", repos, err)
	}},
	{"Blobs/ConcurrentLinksIdempotent", func(e *env) {
		e.registry("r")
		d := digest.FromString("layer")
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() { errs[i] = e.s.LinkBlob(e.ctx, "r", "app", d, 7) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				e.t.Fatalf("LinkBlob %d: %v", i, err)
			}
		}
		if size, err := e.s.StatBlob(e.ctx, "r", "app", d); err != nil || size != 7 {
			e.t.Fatalf("StatBlob = %d, %v", size, err)
		}
	}},
}

func wantMissing(e *env, what string, err error, d digest.Digest, manifest bool) {
	e.t.Helper()
	var mr *meta.MissingReferenceError
	if !errors.As(err, &mr) {
		e.t.Fatalf("%s: error %v, want *meta.MissingReferenceError", what, err)
	}
	if mr.Digest != d || mr.Manifest != manifest {
		e.t.Fatalf("%s: missing %s (manifest %v), want %s (manifest %v)", what, mr.Digest, mr.Manifest, d, manifest)
	}
	if errors.Is(err, meta.ErrNotFound) {
		e.t.Fatalf("%s: errors.Is(err, ErrNotFound) is true for a missing reference", what)
	}
}

var manifestChecks = []check{
	{"Manifests/PutGetByDigestAndTag", func(e *env) {
		e.registry("r")
		m := e.image("r", "library/app", "1")
		m.Annotations = bytesBinary // kept verbatim, whatever it is
		e.put(m, "v1")
		got, err := e.s.GetManifest(e.ctx, "r", "library/app", m.Digest)
		e.wantManifest("GetManifest", got, err, m)
		byTag, err := e.s.GetManifestByTag(e.ctx, "r", "library/app", "v1")
		e.wantManifest("GetManifestByTag", byTag, err, m)
		wantTime(e.t, "CreatedAt by tag", byTag.CreatedAt, got.CreatedAt)
		tags, err := e.s.ListTags(e.ctx, "r", "library/app", "", 0)
		e.wantStrings("ListTags", tags, err, "v1")

		_, err = e.s.GetManifest(e.ctx, "r", "library/app", digest.FromString("nope"))
		e.wantErr("GetManifest(unknown digest)", err, meta.ErrNotFound)
		_, err = e.s.GetManifestByTag(e.ctx, "r", "library/app", "v2")
		e.wantErr("GetManifestByTag(unknown tag)", err, meta.ErrNotFound)
		_, err = e.s.GetManifestByTag(e.ctx, "r", "library/other", "v1")
		e.wantErr("GetManifestByTag(unknown repository)", err, meta.ErrNotFound)
	}},
	{"Manifests/PutWithoutTag", func(e *env) {
		e.registry("r")
		m := e.image("r", "app", "1")
		e.put(m, "")
		got, err := e.s.GetManifest(e.ctx, "r", "app", m.Digest)
		e.wantManifest("GetManifest", got, err, m)
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags", tags, err)
	}},
	{"Manifests/RepeatedReferences", func(e *env) {
		e.registry("r")
		// A layer may appear twice in one image (the same file added twice).
		cfg, layer := e.blob("r", "app", "config"), e.blob("r", "app", "layer")
		m := manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{cfg, layer, layer}, nonce: "dup"})
		e.put(m, "v1")
		idx := manifestOf(spec{reg: "r", repo: "app", children: []digest.Digest{m.Digest, m.Digest}, nonce: "dup index"})
		e.put(idx, "v2")
		got, err := e.s.GetManifestByTag(e.ctx, "r", "app", "v2")
		e.wantManifest("GetManifestByTag(index)", got, err, idx)
	}},
	{"Manifests/CreatesRepository", func(e *env) {
		e.registry("r")
		// An empty index references nothing, so it is the first thing in its
		// repository.
		m := manifestOf(spec{reg: "r", repo: "fresh", nonce: "empty"})
		e.put(m, "t")
		repos, err := e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories", repos, err, "fresh")
		err = e.s.PutManifest(e.ctx, manifestOf(spec{reg: "nope", repo: "fresh", nonce: "empty"}), "t")
		e.wantErr("PutManifest into a registry that does not exist", err, meta.ErrNotFound)
	}},
	{"Manifests/MissingBlobStoresNothing", func(e *env) {
		e.registry("r")
		present := e.blob("r", "app", "config")
		missing1, missing2 := digest.FromString("missing 1"), digest.FromString("missing 2")
		m := manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{present, missing1, missing2}, nonce: "1"})
		err := e.s.PutManifest(e.ctx, m, "v1")
		wantMissing(e, "PutManifest with missing layers", err, missing1, false)
		_, err = e.s.GetManifest(e.ctx, "r", "app", m.Digest)
		e.wantErr("GetManifest after failed put", err, meta.ErrNotFound)
		_, err = e.s.GetManifestByTag(e.ctx, "r", "app", "v1")
		e.wantErr("GetManifestByTag after failed put", err, meta.ErrNotFound)
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags after failed put", tags, err)

		// In a repository with nothing in it, a failed put creates nothing.
		m2 := manifestOf(spec{reg: "r", repo: "empty", blobs: []digest.Digest{missing2}, nonce: "2"})
		err = e.s.PutManifest(e.ctx, m2, "v1")
		wantMissing(e, "PutManifest into an empty repository", err, missing2, false)
		repos, err := e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories after failed put", repos, err, "app")
		_, err = e.s.ListTags(e.ctx, "r", "empty", "", 0)
		e.wantErr("ListTags of the repository a failed put named", err, meta.ErrNotFound)
	}},
	{"Manifests/FailedPutKeepsOldTag", func(e *env) {
		e.registry("r")
		m1 := e.image("r", "app", "1")
		e.put(m1, "latest")
		bad := manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{digest.FromString("missing")}, nonce: "2"})
		err := e.s.PutManifest(e.ctx, bad, "latest")
		wantMissing(e, "PutManifest", err, digest.FromString("missing"), false)
		got, err := e.s.GetManifestByTag(e.ctx, "r", "app", "latest")
		e.wantManifest("latest after the failed put", got, err, m1)
	}},
	{"Manifests/BlobLinkedElsewhereIsMissing", func(e *env) {
		e.registry("r")
		e.registry("s")
		d := e.blob("r", "one", "layer")
		e.blob("s", "two", "layer")
		for _, repo := range []string{"two", "One"} {
			m := manifestOf(spec{reg: "r", repo: repo, blobs: []digest.Digest{d}, nonce: repo})
			err := e.s.PutManifest(e.ctx, m, "")
			wantMissing(e, "PutManifest in r/"+repo, err, d, false)
		}
		m := manifestOf(spec{reg: "s", repo: "one", blobs: []digest.Digest{d}, nonce: "s"})
		err := e.s.PutManifest(e.ctx, m, "")
		wantMissing(e, "PutManifest in s/one", err, d, false)
	}},
	{"Manifests/IndexNeedsItsChildren", func(e *env) {
		e.registry("r")
		amd := e.image("r", "app", "amd64")
		arm := e.image("r", "app", "arm64")
		e.put(amd, "")
		idx := manifestOf(spec{reg: "r", repo: "app", children: []digest.Digest{amd.Digest, arm.Digest}, nonce: "idx"})
		err := e.s.PutManifest(e.ctx, idx, "latest")
		wantMissing(e, "PutManifest index before its child", err, arm.Digest, true)
		_, err = e.s.GetManifestByTag(e.ctx, "r", "app", "latest")
		e.wantErr("GetManifestByTag after failed index put", err, meta.ErrNotFound)

		// A child in another repository does not count.
		other := e.image("r", "other", "arm64")
		e.put(other, "")
		err = e.s.PutManifest(e.ctx, idx, "latest")
		wantMissing(e, "PutManifest index with child in another repository", err, arm.Digest, true)

		e.put(arm, "")
		e.put(idx, "latest")
		got, err := e.s.GetManifestByTag(e.ctx, "r", "app", "latest")
		e.wantManifest("GetManifestByTag(index)", got, err, idx)
	}},
	{"Manifests/PutSameDigestIsIdempotent", func(e *env) {
		e.registry("r")
		m := e.image("r", "app", "1")
		e.put(m, "a")
		first, err := e.s.GetManifest(e.ctx, "r", "app", m.Digest)
		if err != nil {
			e.t.Fatal(err)
		}
		e.put(m, "")
		e.put(m, "b")
		got, err := e.s.GetManifest(e.ctx, "r", "app", m.Digest)
		e.wantManifest("GetManifest", got, err, m)
		wantTime(e.t, "CreatedAt after re-put", got.CreatedAt, first.CreatedAt)
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags", tags, err, "a", "b")
		for _, tag := range []string{"a", "b"} {
			got, err := e.s.GetManifestByTag(e.ctx, "r", "app", tag)
			e.wantManifest("GetManifestByTag("+tag+")", got, err, m)
		}
	}},
	{"Manifests/TagMoves", func(e *env) {
		e.registry("r")
		m1 := e.image("r", "app", "1")
		m2 := e.image("r", "app", "2")
		e.put(m1, "latest")
		e.put(m2, "latest")
		got, err := e.s.GetManifestByTag(e.ctx, "r", "app", "latest")
		e.wantManifest("latest after move", got, err, m2)
		got, err = e.s.GetManifest(e.ctx, "r", "app", m1.Digest)
		e.wantManifest("old manifest by digest", got, err, m1)
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags", tags, err, "latest")
		e.put(m1, "latest") // and back
		got, err = e.s.GetManifestByTag(e.ctx, "r", "app", "latest")
		e.wantManifest("latest moved back", got, err, m1)
	}},
	{"Manifests/DeleteManifestRemovesItsTags", func(e *env) {
		e.registry("r")
		subject := e.image("r", "app", "subject")
		e.put(subject, "")
		m1 := manifestOf(spec{reg: "r", repo: "app", blobs: []digest.Digest{e.blob("r", "app", "sig")},
			subject: subject.Digest, artifactType: "application/x-sig", nonce: "1"})
		m2 := e.image("r", "app", "2")
		e.put(m1, "a")
		e.put(m1, "b")
		e.put(m2, "c")
		if err := e.s.DeleteManifest(e.ctx, "r", "app", m1.Digest); err != nil {
			e.t.Fatalf("DeleteManifest: %v", err)
		}
		_, err := e.s.GetManifest(e.ctx, "r", "app", m1.Digest)
		e.wantErr("GetManifest after delete", err, meta.ErrNotFound)
		for _, tag := range []string{"a", "b"} {
			_, err := e.s.GetManifestByTag(e.ctx, "r", "app", tag)
			e.wantErr("GetManifestByTag("+tag+") after delete", err, meta.ErrNotFound)
		}
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags after delete", tags, err, "c")
		refs, err := e.s.ListReferrers(e.ctx, "r", "app", subject.Digest, "")
		if err != nil || len(refs) != 0 {
			e.t.Fatalf("ListReferrers after deleting the referrer = %d, %v; want none", len(refs), err)
		}
		err = e.s.DeleteManifest(e.ctx, "r", "app", m1.Digest)
		e.wantErr("DeleteManifest again", err, meta.ErrNotFound)
		// The blobs stay linked, and the manifest can come back, without its
		// old tags.
		if _, err := e.s.StatBlob(e.ctx, "r", "app", m1.Blobs[0]); err != nil {
			e.t.Fatalf("StatBlob after DeleteManifest: %v", err)
		}
		e.put(m1, "")
		tags, err = e.s.ListTags(e.ctx, "r", "app", "", 0)
		e.wantStrings("ListTags after re-put", tags, err, "c")
		// Deleting the subject leaves its referrers.
		if err := e.s.DeleteManifest(e.ctx, "r", "app", subject.Digest); err != nil {
			e.t.Fatalf("DeleteManifest(subject): %v", err)
		}
		refs, err = e.s.ListReferrers(e.ctx, "r", "app", subject.Digest, "")
		if err != nil || len(refs) != 1 {
			e.t.Fatalf("ListReferrers after deleting the subject = %d, %v; want 1", len(refs), err)
		}
	}},
	{"Manifests/DeleteTagKeepsManifest", func(e *env) {
		e.registry("r")
		m := e.image("r", "app", "1")
		e.put(m, "a")
		e.put(m, "b")
		if err := e.s.DeleteTag(e.ctx, "r", "app", "a"); err != nil {
			e.t.Fatalf("DeleteTag: %v", err)
		}
		_, err := e.s.GetManifestByTag(e.ctx, "r", "app", "a")
		e.wantErr("GetManifestByTag(a) after DeleteTag", err, meta.ErrNotFound)
		got, err := e.s.GetManifestByTag(e.ctx, "r", "app", "b")
		e.wantManifest("GetManifestByTag(b)", got, err, m)
		got, err = e.s.GetManifest(e.ctx, "r", "app", m.Digest)
		e.wantManifest("GetManifest", got, err, m)
		err = e.s.DeleteTag(e.ctx, "r", "app", "a")
		e.wantErr("DeleteTag again", err, meta.ErrNotFound)
		err = e.s.DeleteTag(e.ctx, "r", "other", "b")
		e.wantErr("DeleteTag in another repository", err, meta.ErrNotFound)
	}},
	{"Manifests/ScopedToRepositoryAndRegistry", func(e *env) {
		e.registry("a")
		e.registry("b")
		ma := e.image("a", "app", "a")
		mb := e.image("b", "app", "b")
		e.put(ma, "latest")
		e.put(mb, "latest")
		got, err := e.s.GetManifestByTag(e.ctx, "a", "app", "latest")
		e.wantManifest("a:latest", got, err, ma)
		got, err = e.s.GetManifestByTag(e.ctx, "b", "app", "latest")
		e.wantManifest("b:latest", got, err, mb)
		_, err = e.s.GetManifest(e.ctx, "b", "app", ma.Digest)
		e.wantErr("a's manifest in b", err, meta.ErrNotFound)
		_, err = e.s.GetManifest(e.ctx, "a", "other", ma.Digest)
		e.wantErr("a/app's manifest in a/other", err, meta.ErrNotFound)
		err = e.s.DeleteManifest(e.ctx, "b", "app", ma.Digest)
		e.wantErr("DeleteManifest of a's manifest in b", err, meta.ErrNotFound)
		if err := e.s.DeleteManifest(e.ctx, "b", "app", mb.Digest); err != nil {
			e.t.Fatalf("DeleteManifest(b): %v", err)
		}
		got, err = e.s.GetManifestByTag(e.ctx, "a", "app", "latest")
		e.wantManifest("a:latest after deleting b's", got, err, ma)
	}},
	{"Manifests/RepositoryAndTagNamesCaseSensitive", func(e *env) {
		e.registry("r")
		lower := e.image("r", "repo", "lower")
		upper := e.image("r", "Repo", "upper")
		e.put(lower, "tag")
		e.put(upper, "tag")
		e.put(upper, "TAG")
		got, err := e.s.GetManifestByTag(e.ctx, "r", "repo", "tag")
		e.wantManifest("repo:tag", got, err, lower)
		got, err = e.s.GetManifestByTag(e.ctx, "r", "Repo", "tag")
		e.wantManifest("Repo:tag", got, err, upper)
		_, err = e.s.GetManifestByTag(e.ctx, "r", "repo", "TAG")
		e.wantErr("repo:TAG", err, meta.ErrNotFound)
		repos, err := e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories", repos, err, "Repo", "repo")
	}},
	{"Manifests/ConcurrentPutsOfOneManifest", func(e *env) {
		e.registry("r")
		m := e.image("r", "app", "1")
		const n = 12
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = e.s.PutManifest(e.ctx, m, fmt.Sprintf("t%02d", i)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				e.t.Fatalf("PutManifest %d: %v", i, err)
			}
		}
		tags, err := e.s.ListTags(e.ctx, "r", "app", "", 0)
		if err != nil || len(tags) != n {
			e.t.Fatalf("ListTags = %q, %v; want %d tags", tags, err, n)
		}
	}},
	{"Manifests/ReadersSeeWholeManifestsWhileTagsMove", func(e *env) {
		e.registry("r")
		var ms []meta.Manifest
		for i := range 4 {
			ms = append(ms, e.image("r", "app", fmt.Sprint(i)))
			e.put(ms[i], "")
		}
		e.put(ms[0], "latest")
		byDigest := map[digest.Digest]meta.Manifest{}
		for _, m := range ms {
			byDigest[m.Digest] = m
		}
		var wg sync.WaitGroup
		errc := make(chan error, 64)
		for w := range 2 {
			wg.Go(func() {
				for i := range 40 {
					if err := e.s.PutManifest(e.ctx, ms[(i+w)%len(ms)], "latest"); err != nil {
						errc <- fmt.Errorf("writer: %w", err)
						return
					}
				}
			})
		}
		for range 4 {
			wg.Go(func() {
				for range 80 {
					got, err := e.s.GetManifestByTag(e.ctx, "r", "app", "latest")
					if err != nil {
						errc <- fmt.Errorf("reader: %w", err)
						return
					}
					want, ok := byDigest[got.Digest]
					if !ok || diffManifest(got, want, true) != nil || digest.FromBytes(got.Content) != got.Digest {
						errc <- fmt.Errorf("reader saw a torn manifest %s", got.Digest)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			e.t.Error(err)
		}
	}},
}
