package metatest

import (
	"bytes"
	"errors"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

func diffRegistry(e *env, what string, got, want meta.Registry) {
	e.t.Helper()
	if got.Name != want.Name || got.ResourceID != want.ResourceID || got.Location != want.Location ||
		got.SKU != want.SKU || got.Version != want.Version ||
		!bytes.Equal(got.Properties, want.Properties) || !bytes.Equal(got.Tags, want.Tags) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		e.t.Fatalf("%s =\n  %+v\nwant\n  %+v", what, got, want)
	}
}

var registryChecks = []check{
	{"Registries/CreateGetRoundTrip", func(e *env) {
		in := meta.Registry{Name: "alpha", ResourceID: "/subscriptions/s/x/alpha", Location: "westeurope", SKU: "Premium",
			Properties: bytesNumber, Tags: bytesBinary}
		got, err := e.s.CreateRegistry(e.ctx, in)
		if err != nil {
			e.t.Fatalf("CreateRegistry: %v", err)
		}
		if got.Version != 1 || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
			e.t.Fatalf("created record: Version %d CreatedAt %v UpdatedAt %v; want version 1 and both timestamps set and equal", got.Version, got.CreatedAt, got.UpdatedAt)
		}
		want := in
		want.Version, want.CreatedAt, want.UpdatedAt = 1, got.CreatedAt, got.UpdatedAt
		diffRegistry(e, "CreateRegistry result", got, want)
		read, err := e.s.GetRegistry(e.ctx, "alpha")
		if err != nil {
			e.t.Fatalf("GetRegistry: %v", err)
		}
		diffRegistry(e, "GetRegistry", read, want)
		_, err = e.s.CreateRegistry(e.ctx, in)
		e.wantErr("CreateRegistry again", err, meta.ErrAlreadyExists)
		_, err = e.s.GetRegistry(e.ctx, "beta")
		e.wantErr("GetRegistry(missing)", err, meta.ErrNotFound)
	}},
	{"Registries/NilBytes", func(e *env) {
		got, err := e.s.CreateRegistry(e.ctx, meta.Registry{Name: "alpha", SKU: "Basic"})
		if err != nil {
			e.t.Fatalf("CreateRegistry: %v", err)
		}
		read, err := e.s.GetRegistry(e.ctx, "alpha")
		if err != nil {
			e.t.Fatalf("GetRegistry: %v", err)
		}
		diffRegistry(e, "GetRegistry", read, got)
		if len(read.Tags) != 0 || len(read.Properties) != 0 {
			e.t.Fatalf("nil Tags/Properties came back as %q/%q", read.Tags, read.Properties)
		}
	}},
	{"Registries/NamesCaseInsensitive", func(e *env) {
		r, err := e.s.CreateRegistry(e.ctx, meta.Registry{Name: "MyReg", SKU: "Basic"})
		if err != nil {
			e.t.Fatalf("CreateRegistry: %v", err)
		}
		if r.Name != "myreg" {
			e.t.Fatalf("Name = %q, want lower-case myreg", r.Name)
		}
		_, err = e.s.CreateRegistry(e.ctx, meta.Registry{Name: "MYREG", SKU: "Basic"})
		e.wantErr("CreateRegistry(MYREG) after MyReg", err, meta.ErrAlreadyExists)
		got, err := e.s.GetRegistry(e.ctx, "mYrEg")
		if err != nil || got.Name != "myreg" {
			e.t.Fatalf("GetRegistry(mYrEg) = %q, %v", got.Name, err)
		}
		upd := got
		upd.Name, upd.SKU = "MYREG", "Standard"
		if _, err := e.s.UpdateRegistry(e.ctx, upd); err != nil {
			e.t.Fatalf("UpdateRegistry(MYREG): %v", err)
		}
		// Data written under one spelling is read under another.
		d := e.blob("MyReg", "app", "b")
		if _, err := e.s.StatBlob(e.ctx, "myreg", "app", d); err != nil {
			e.t.Fatalf("StatBlob(myreg) after LinkBlob(MyReg): %v", err)
		}
		m := manifestOf(spec{reg: "MYREG", repo: "app", blobs: []digest.Digest{d}, nonce: "1"})
		e.put(m, "v1")
		got2, err := e.s.GetManifestByTag(e.ctx, "myreg", "app", "v1")
		e.wantManifest("GetManifestByTag(myreg)", got2, err, m)
		repos, err := e.s.ListRepositories(e.ctx, "MyReg", "", 0)
		e.wantStrings("ListRepositories(MyReg)", repos, err, "app")
		if err := e.s.CreateUpload(e.ctx, meta.Upload{ID: "u", Registry: "MyReg", Repository: "app"}); err != nil {
			e.t.Fatalf("CreateUpload(MyReg): %v", err)
		}
		u, err := e.s.GetUpload(e.ctx, "u")
		if err != nil || u.Registry != "myreg" {
			e.t.Fatalf("GetUpload: Registry %q, %v; want myreg", u.Registry, err)
		}
		regs, err := e.s.ListRegistries(e.ctx)
		if err != nil || len(regs) != 1 || regs[0].Name != "myreg" {
			e.t.Fatalf("ListRegistries = %v, %v", regs, err)
		}
		if err := e.s.DeleteRegistry(e.ctx, "MYREG"); err != nil {
			e.t.Fatalf("DeleteRegistry(MYREG): %v", err)
		}
		_, err = e.s.GetRegistry(e.ctx, "myreg")
		e.wantErr("GetRegistry after delete", err, meta.ErrNotFound)
	}},
	{"Registries/Update", func(e *env) {
		r := e.registry("alpha")
		upd := r
		upd.ResourceID, upd.Location, upd.SKU = "/new/id", "northeurope", "Standard"
		upd.Properties, upd.Tags = bytesBinary, []byte(`{"env":"prod"}`)
		got, err := e.s.UpdateRegistry(e.ctx, upd)
		if err != nil {
			e.t.Fatalf("UpdateRegistry: %v", err)
		}
		if got.Version != 2 || !got.CreatedAt.Equal(r.CreatedAt) || got.UpdatedAt.Before(r.UpdatedAt) {
			e.t.Fatalf("after update: Version %d CreatedAt %v UpdatedAt %v; want 2, %v, >= %v", got.Version, got.CreatedAt, got.UpdatedAt, r.CreatedAt, r.UpdatedAt)
		}
		want := upd
		want.Version, want.CreatedAt, want.UpdatedAt = 2, r.CreatedAt, got.UpdatedAt
		diffRegistry(e, "UpdateRegistry result", got, want)
		read, err := e.s.GetRegistry(e.ctx, "alpha")
		if err != nil {
			e.t.Fatalf("GetRegistry: %v", err)
		}
		diffRegistry(e, "GetRegistry after update", read, want)

		// The caller's stale copy (version 1) loses.
		_, err = e.s.UpdateRegistry(e.ctx, upd)
		e.wantErr("UpdateRegistry at stale version", err, meta.ErrConflict)
		read2, err := e.s.GetRegistry(e.ctx, "alpha")
		if err != nil {
			e.t.Fatalf("GetRegistry: %v", err)
		}
		diffRegistry(e, "GetRegistry after conflict", read2, want)

		// Clearing the byte fields.
		got.Properties, got.Tags = nil, nil
		got3, err := e.s.UpdateRegistry(e.ctx, got)
		if err != nil || got3.Version != 3 || len(got3.Properties) != 0 || len(got3.Tags) != 0 {
			e.t.Fatalf("UpdateRegistry clearing bytes = %+v, %v", got3, err)
		}

		_, err = e.s.UpdateRegistry(e.ctx, meta.Registry{Name: "missing", Version: 1})
		e.wantErr("UpdateRegistry(missing)", err, meta.ErrNotFound)
	}},
	{"Registries/UpdateRaceOneWinner", func(e *env) {
		r := e.registry("alpha")
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				u := r
				u.Location = string(rune('a' + i))
				_, errs[i] = e.s.UpdateRegistry(e.ctx, u)
			})
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, meta.ErrConflict):
				e.t.Fatalf("update %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if wins != 1 {
			e.t.Fatalf("%d updates at version 1 succeeded, want exactly 1", wins)
		}
		got, err := e.s.GetRegistry(e.ctx, "alpha")
		if err != nil || got.Version != 2 {
			e.t.Fatalf("GetRegistry: Version %d, %v; want 2", got.Version, err)
		}
	}},
	{"Registries/ListOrderedByName", func(e *env) {
		regs, err := e.s.ListRegistries(e.ctx)
		if err != nil || len(regs) != 0 {
			e.t.Fatalf("ListRegistries on empty store = %v, %v", regs, err)
		}
		for _, n := range []string{"charlie", "Alpha", "bravo", "alpha-2"} {
			e.registry(n)
		}
		regs, err = e.s.ListRegistries(e.ctx)
		var names []string
		for _, r := range regs {
			names = append(names, r.Name)
			if r.Version != 1 || r.CreatedAt.IsZero() {
				e.t.Fatalf("listed registry %+v lacks version or timestamps", r)
			}
		}
		e.wantStrings("ListRegistries", names, err, "alpha", "alpha-2", "bravo", "charlie")
	}},
	{"Registries/DeleteCascadesAndIsolates", func(e *env) {
		e.registry("a")
		e.registry("b")
		// The same repository name in both registries, with different content.
		var ms [2]meta.Manifest
		for i, reg := range []string{"a", "b"} {
			ms[i] = e.image(reg, "app", reg+" image")
			e.put(ms[i], "latest")
			ref := manifestOf(spec{reg: reg, repo: "app", subject: ms[i].Digest, artifactType: "application/x-sig", nonce: reg + " sig"})
			e.put(ref, "")
			e.blob(reg, "other", "extra")
			if err := e.s.CreateUpload(e.ctx, meta.Upload{ID: "upload-" + reg, Registry: reg, Repository: "app"}); err != nil {
				e.t.Fatalf("CreateUpload: %v", err)
			}
		}
		if err := e.s.DeleteRegistry(e.ctx, "a"); err != nil {
			e.t.Fatalf("DeleteRegistry(a): %v", err)
		}
		err := e.s.DeleteRegistry(e.ctx, "a")
		e.wantErr("DeleteRegistry(a) again", err, meta.ErrNotFound)
		_, err = e.s.GetRegistry(e.ctx, "a")
		e.wantErr("GetRegistry(a)", err, meta.ErrNotFound)
		_, err = e.s.GetUpload(e.ctx, "upload-a")
		e.wantErr("GetUpload(upload-a)", err, meta.ErrNotFound)

		// b is untouched.
		got, err := e.s.GetManifestByTag(e.ctx, "b", "app", "latest")
		e.wantManifest("b: GetManifestByTag", got, err, ms[1])
		refs, err := e.s.ListReferrers(e.ctx, "b", "app", ms[1].Digest, "")
		if err != nil || len(refs) != 1 {
			e.t.Fatalf("b: ListReferrers = %d, %v; want 1", len(refs), err)
		}
		repos, err := e.s.ListRepositories(e.ctx, "b", "", 0)
		e.wantStrings("b: ListRepositories", repos, err, "app", "other")
		if _, err := e.s.StatBlob(e.ctx, "b", "other", digest.FromString("extra")); err != nil {
			e.t.Fatalf("b: StatBlob: %v", err)
		}
		if _, err := e.s.GetUpload(e.ctx, "upload-b"); err != nil {
			e.t.Fatalf("b: GetUpload: %v", err)
		}

		// A registry created again under the name starts empty.
		e.registry("a")
		repos, err = e.s.ListRepositories(e.ctx, "a", "", 0)
		e.wantStrings("new a: ListRepositories", repos, err)
		_, err = e.s.StatBlob(e.ctx, "a", "other", digest.FromString("extra"))
		e.wantErr("new a: StatBlob", err, meta.ErrNotFound)
		_, err = e.s.GetManifest(e.ctx, "a", "app", ms[0].Digest)
		e.wantErr("new a: GetManifest", err, meta.ErrNotFound)
		_, err = e.s.GetManifestByTag(e.ctx, "a", "app", "latest")
		e.wantErr("new a: GetManifestByTag", err, meta.ErrNotFound)
		_, err = e.s.ListTags(e.ctx, "a", "app", "", 0)
		e.wantErr("new a: ListTags", err, meta.ErrNotFound)
		refs, err = e.s.ListReferrers(e.ctx, "a", "app", ms[0].Digest, "")
		if err != nil || len(refs) != 0 {
			e.t.Fatalf("new a: ListReferrers = %d, %v; want none", len(refs), err)
		}
	}},
}
