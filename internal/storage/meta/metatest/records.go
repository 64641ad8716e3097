package metatest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// waitTick makes the store's clock move past the timestamps already stored,
// for clocks coarser than a nanosecond.
func waitTick() { time.Sleep(5 * time.Millisecond) }

var uploadChecks = []check{
	{"Uploads/CRUD", func(e *env) {
		e.registry("r")
		in := meta.Upload{ID: "u1", Registry: "r", Repository: "library/app", Offset: 0, HashState: bytesBinary}
		if err := e.s.CreateUpload(e.ctx, in); err != nil {
			e.t.Fatalf("CreateUpload: %v", err)
		}
		err := e.s.CreateUpload(e.ctx, in)
		e.wantErr("CreateUpload with a taken id", err, meta.ErrAlreadyExists)
		got, err := e.s.GetUpload(e.ctx, "u1")
		if err != nil {
			e.t.Fatalf("GetUpload: %v", err)
		}
		if got.ID != "u1" || got.Registry != "r" || got.Repository != "library/app" || got.Offset != 0 ||
			!bytes.Equal(got.HashState, bytesBinary) || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
			e.t.Fatalf("GetUpload = %+v", got)
		}
		// An upload does not create its repository.
		repos, err := e.s.ListRepositories(e.ctx, "r", "", 0)
		e.wantStrings("ListRepositories", repos, err)

		waitTick()
		if err := e.s.UpdateUpload(e.ctx, "u1", 0, 1<<20, bytesNumber); err != nil {
			e.t.Fatalf("UpdateUpload: %v", err)
		}
		got2, err := e.s.GetUpload(e.ctx, "u1")
		if err != nil {
			e.t.Fatalf("GetUpload: %v", err)
		}
		if got2.Offset != 1<<20 || !bytes.Equal(got2.HashState, bytesNumber) || !got2.CreatedAt.Equal(got.CreatedAt) || !got2.UpdatedAt.After(got.UpdatedAt) {
			e.t.Fatalf("after UpdateUpload: %+v (before %+v)", got2, got)
		}
		err = e.s.UpdateUpload(e.ctx, "u1", 0, 2<<20, nil)
		e.wantErr("UpdateUpload from a stale offset", err, meta.ErrConflict)
		if got3, err := e.s.GetUpload(e.ctx, "u1"); err != nil || got3.Offset != 1<<20 {
			e.t.Fatalf("after conflict: Offset %d, %v", got3.Offset, err)
		}
		err = e.s.UpdateUpload(e.ctx, "nope", 0, 1, nil)
		e.wantErr("UpdateUpload(unknown)", err, meta.ErrNotFound)

		if err := e.s.DeleteUpload(e.ctx, "u1"); err != nil {
			e.t.Fatalf("DeleteUpload: %v", err)
		}
		_, err = e.s.GetUpload(e.ctx, "u1")
		e.wantErr("GetUpload after delete", err, meta.ErrNotFound)
		err = e.s.DeleteUpload(e.ctx, "u1")
		e.wantErr("DeleteUpload again", err, meta.ErrNotFound)
		err = e.s.UpdateUpload(e.ctx, "u1", 1<<20, 2<<20, nil)
		e.wantErr("UpdateUpload after delete", err, meta.ErrNotFound)

		err = e.s.CreateUpload(e.ctx, meta.Upload{ID: "u2", Registry: "nope", Repository: "app"})
		e.wantErr("CreateUpload in a registry that does not exist", err, meta.ErrNotFound)
	}},
	{"Uploads/CompareAndSwapOneWinnerPerStep", func(e *env) {
		e.registry("r")
		if err := e.s.CreateUpload(e.ctx, meta.Upload{ID: "u", Registry: "r", Repository: "app"}); err != nil {
			e.t.Fatalf("CreateUpload: %v", err)
		}
		const racers, steps = 8, 6
		for step := range int64(steps) {
			var wg sync.WaitGroup
			errs := make([]error, racers)
			start := make(chan struct{})
			for i := range racers {
				wg.Go(func() {
					<-start
					errs[i] = e.s.UpdateUpload(e.ctx, "u", step*100, (step+1)*100, fmt.Appendf(nil, "racer %d", i))
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					e.t.Fatalf("step %d: racers %d and %d both won", step, winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, meta.ErrConflict):
					e.t.Fatalf("step %d racer %d: %v, want nil or ErrConflict", step, i, err)
				}
			}
			if winner < 0 {
				e.t.Fatalf("step %d: no racer won", step)
			}
			u, err := e.s.GetUpload(e.ctx, "u")
			if err != nil || u.Offset != (step+1)*100 || string(u.HashState) != fmt.Sprintf("racer %d", winner) {
				e.t.Fatalf("step %d: stored %d %q, %v; want the winner's %d %q", step, u.Offset, u.HashState, err, (step+1)*100, fmt.Sprintf("racer %d", winner))
			}
		}
	}},
	{"Uploads/ListBefore", func(e *env) {
		e.registry("r")
		if err := e.s.CreateUpload(e.ctx, meta.Upload{ID: "old", Registry: "r", Repository: "app"}); err != nil {
			e.t.Fatal(err)
		}
		waitTick()
		cut := time.Now()
		waitTick()
		if err := e.s.CreateUpload(e.ctx, meta.Upload{ID: "new", Registry: "r", Repository: "app"}); err != nil {
			e.t.Fatal(err)
		}
		ids := func(us []meta.Upload, err error) []string {
			e.t.Helper()
			if err != nil {
				e.t.Fatalf("ListUploadsBefore: %v", err)
			}
			var out []string
			for _, u := range us {
				out = append(out, u.ID)
			}
			return out
		}
		e.wantStrings("ListUploadsBefore(cut)", ids(e.s.ListUploadsBefore(e.ctx, cut)), nil, "old")
		e.wantStrings("ListUploadsBefore(past)", ids(e.s.ListUploadsBefore(e.ctx, cut.Add(-time.Hour))), nil)
		all := ids(e.s.ListUploadsBefore(e.ctx, time.Now().Add(time.Hour)))
		if len(all) != 2 {
			e.t.Fatalf("ListUploadsBefore(future) = %q, want both", all)
		}
		// Progress keeps an upload alive.
		if err := e.s.UpdateUpload(e.ctx, "old", 0, 10, nil); err != nil {
			e.t.Fatal(err)
		}
		e.wantStrings("ListUploadsBefore(cut) after progress", ids(e.s.ListUploadsBefore(e.ctx, cut)), nil)
	}},
}

func samePrincipal(e *env, what string, got, want meta.Principal) {
	e.t.Helper()
	if got.ID != want.ID || got.Kind != want.Kind || got.Name != want.Name ||
		!bytes.Equal(got.SecretHash, want.SecretHash) || !bytes.Equal(got.Properties, want.Properties) ||
		got.CreatedAt.IsZero() || got.UpdatedAt.Before(got.CreatedAt) {
		e.t.Fatalf("%s =\n  %+v\nwant\n  %+v", what, got, want)
	}
}

var principalChecks = []check{
	{"Principals/PutGetReplaceDelete", func(e *env) {
		p := meta.Principal{ID: "11111111-1111-1111-1111-111111111111", Kind: "user", Name: "alice",
			SecretHash: bytesBinary, Properties: bytesNumber}
		if err := e.s.PutPrincipal(e.ctx, p); err != nil {
			e.t.Fatalf("PutPrincipal: %v", err)
		}
		got, err := e.s.GetPrincipal(e.ctx, p.ID)
		if err != nil {
			e.t.Fatalf("GetPrincipal: %v", err)
		}
		samePrincipal(e, "GetPrincipal", got, p)
		byName, err := e.s.GetPrincipalByName(e.ctx, "user", "alice")
		if err != nil {
			e.t.Fatalf("GetPrincipalByName: %v", err)
		}
		samePrincipal(e, "GetPrincipalByName", byName, p)
		_, err = e.s.GetPrincipalByName(e.ctx, "servicePrincipal", "alice")
		e.wantErr("GetPrincipalByName(other kind)", err, meta.ErrNotFound)
		_, err = e.s.GetPrincipalByName(e.ctx, "user", "Alice")
		e.wantErr("GetPrincipalByName(other case)", err, meta.ErrNotFound)

		// Replacing keeps CreatedAt, may rename, may clear bytes.
		waitTick()
		p2 := p
		p2.Name, p2.SecretHash, p2.Properties = "alice2", nil, []byte(`{"x":1}`)
		if err := e.s.PutPrincipal(e.ctx, p2); err != nil {
			e.t.Fatalf("PutPrincipal(replace): %v", err)
		}
		got2, err := e.s.GetPrincipal(e.ctx, p.ID)
		if err != nil {
			e.t.Fatalf("GetPrincipal: %v", err)
		}
		samePrincipal(e, "GetPrincipal after replace", got2, p2)
		wantTime(e.t, "CreatedAt after replace", got2.CreatedAt, got.CreatedAt)
		if !got2.UpdatedAt.After(got.UpdatedAt) {
			e.t.Fatalf("UpdatedAt %v did not advance past %v", got2.UpdatedAt, got.UpdatedAt)
		}
		_, err = e.s.GetPrincipalByName(e.ctx, "user", "alice")
		e.wantErr("old name after rename", err, meta.ErrNotFound)

		if err := e.s.DeletePrincipal(e.ctx, p.ID); err != nil {
			e.t.Fatalf("DeletePrincipal: %v", err)
		}
		_, err = e.s.GetPrincipal(e.ctx, p.ID)
		e.wantErr("GetPrincipal after delete", err, meta.ErrNotFound)
		err = e.s.DeletePrincipal(e.ctx, p.ID)
		e.wantErr("DeletePrincipal again", err, meta.ErrNotFound)
	}},
	{"Principals/NameUniquePerKind", func(e *env) {
		put := func(id, kind, name string) error {
			return e.s.PutPrincipal(e.ctx, meta.Principal{ID: id, Kind: kind, Name: name})
		}
		if err := put("1", "user", "bob"); err != nil {
			e.t.Fatal(err)
		}
		if err := put("2", "servicePrincipal", "bob"); err != nil {
			e.t.Fatalf("same name, other kind: %v", err)
		}
		e.wantErr("same kind and name, other id", put("3", "user", "bob"), meta.ErrAlreadyExists)
		if _, err := e.s.GetPrincipal(e.ctx, "3"); !errors.Is(err, meta.ErrNotFound) {
			e.t.Fatalf("the rejected principal was stored: %v", err)
		}
		if err := put("3", "user", "carol"); err != nil {
			e.t.Fatal(err)
		}
		e.wantErr("renaming onto a taken name", put("3", "user", "bob"), meta.ErrAlreadyExists)
		if p, err := e.s.GetPrincipal(e.ctx, "3"); err != nil || p.Name != "carol" {
			e.t.Fatalf("after the rejected rename: %q, %v", p.Name, err)
		}
		// Freed names can be taken.
		if err := e.s.DeletePrincipal(e.ctx, "1"); err != nil {
			e.t.Fatal(err)
		}
		if err := put("3", "user", "bob"); err != nil {
			e.t.Fatalf("taking a freed name: %v", err)
		}
	}},
	{"Principals/List", func(e *env) {
		ps, err := e.s.ListPrincipals(e.ctx, "")
		if err != nil || len(ps) != 0 {
			e.t.Fatalf("ListPrincipals on empty store = %v, %v", ps, err)
		}
		for _, p := range []meta.Principal{
			{ID: "1", Kind: "user", Name: "zed"},
			{ID: "2", Kind: "servicePrincipal", Name: "build"},
			{ID: "3", Kind: "user", Name: "amy"},
			{ID: "4", Kind: "token", Name: "pull-only"},
		} {
			if err := e.s.PutPrincipal(e.ctx, p); err != nil {
				e.t.Fatal(err)
			}
		}
		names := func(ps []meta.Principal, err error) []string {
			e.t.Helper()
			if err != nil {
				e.t.Fatalf("ListPrincipals: %v", err)
			}
			var out []string
			for _, p := range ps {
				out = append(out, p.Name)
			}
			return out
		}
		e.wantStrings("ListPrincipals(all)", names(e.s.ListPrincipals(e.ctx, "")), nil, "amy", "build", "pull-only", "zed")
		e.wantStrings("ListPrincipals(user)", names(e.s.ListPrincipals(e.ctx, "user")), nil, "amy", "zed")
		e.wantStrings("ListPrincipals(none)", names(e.s.ListPrincipals(e.ctx, "group")), nil)
	}},
}

var keyChecks = []check{
	{"SigningKeys/AddListRetire", func(e *env) {
		keys, err := e.s.ListSigningKeys(e.ctx)
		if err != nil || len(keys) != 0 {
			e.t.Fatalf("ListSigningKeys on empty store = %v, %v", keys, err)
		}
		base := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
		for i, id := range []string{"k-b", "k-c", "k-a"} {
			k := meta.SigningKey{ID: id, Algorithm: "ES256", PrivateKey: append([]byte{byte(i)}, bytesBinary...),
				CreatedAt: base.Add(time.Duration(i) * time.Hour)}
			if err := e.s.AddSigningKey(e.ctx, k); err != nil {
				e.t.Fatalf("AddSigningKey(%s): %v", id, err)
			}
		}
		err = e.s.AddSigningKey(e.ctx, meta.SigningKey{ID: "k-a", Algorithm: "ES256", PrivateKey: []byte{1}})
		e.wantErr("AddSigningKey with a taken id", err, meta.ErrAlreadyExists)

		keys, err = e.s.ListSigningKeys(e.ctx)
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		e.wantStrings("ListSigningKeys (newest first)", ids, err, "k-a", "k-c", "k-b")
		k := keys[2]
		if k.Algorithm != "ES256" || !bytes.Equal(k.PrivateKey, append([]byte{0}, bytesBinary...)) || k.RetiredAt != nil {
			e.t.Fatalf("k-b = %+v", k)
		}
		wantTime(e.t, "k-b CreatedAt", k.CreatedAt, base)

		retired := base.Add(90 * time.Minute)
		if err := e.s.RetireSigningKey(e.ctx, "k-b", retired); err != nil {
			e.t.Fatalf("RetireSigningKey: %v", err)
		}
		err = e.s.RetireSigningKey(e.ctx, "nope", retired)
		e.wantErr("RetireSigningKey(unknown)", err, meta.ErrNotFound)
		keys, err = e.s.ListSigningKeys(e.ctx)
		if err != nil || len(keys) != 3 {
			e.t.Fatalf("ListSigningKeys = %d, %v", len(keys), err)
		}
		for _, k := range keys {
			switch {
			case k.ID == "k-b" && (k.RetiredAt == nil || !k.RetiredAt.Equal(retired)):
				e.t.Fatalf("k-b RetiredAt = %v, want %v", k.RetiredAt, retired)
			case k.ID != "k-b" && k.RetiredAt != nil:
				e.t.Fatalf("%s RetiredAt = %v, want nil", k.ID, k.RetiredAt)
			}
		}
	}},
	{"SigningKeys/ZeroCreatedAtIsNow", func(e *env) {
		before := time.Now()
		if err := e.s.AddSigningKey(e.ctx, meta.SigningKey{ID: "k", Algorithm: "ES256", PrivateKey: []byte{1, 2}}); err != nil {
			e.t.Fatal(err)
		}
		keys, err := e.s.ListSigningKeys(e.ctx)
		if err != nil || len(keys) != 1 {
			e.t.Fatalf("ListSigningKeys = %v, %v", keys, err)
		}
		if c := keys[0].CreatedAt; c.Before(before.Add(-time.Second)) || c.After(time.Now().Add(time.Second)) {
			e.t.Fatalf("CreatedAt = %v, want about now (%v)", c, before)
		}
	}},
}
