package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

func runMoat(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func jwtKid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestKeysRotate rotates the signing keys with the CLI under a "replica"
// that keeps running: tokens signed before still verify, everywhere, and
// new tokens carry the new kid.
func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	opts := identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)}
	running, err := identity.New(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := running.EnsureAdmin(ctx, "pw"); err != nil {
		t.Fatal(err)
	}
	admin, err := running.AuthenticateBasic(ctx, identity.AdminName, "pw")
	if err != nil {
		t.Fatal(err)
	}
	const service = "moat.localhost"
	before, err := running.IssueAccessToken(ctx, admin, "moat", service, nil)
	if err != nil {
		t.Fatal(err)
	}

	type key struct {
		Kid, State, RetiredAt, VerifiesUntil string
	}
	decode := func(s string) []key {
		t.Helper()
		var ks []key
		if err := json.Unmarshal([]byte(s), &ks); err != nil {
			t.Fatalf("output %q: %v", s, err)
		}
		return ks
	}
	out, err := runMoat(t, "keys", "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	ks := decode(out)
	if len(ks) != 1 || ks[0].State != identity.KeyActive || ks[0].Kid != jwtKid(t, before.Token) {
		t.Fatalf("keys before rotation: %s", out)
	}
	oldKid := ks[0].Kid

	out, err = runMoat(t, "keys", "rotate", "--database", "sqlite:"+filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	ks = decode(out)
	if len(ks) != 2 || ks[0].State != identity.KeyActive || ks[0].Kid == oldKid ||
		ks[1].Kid != oldKid || ks[1].State != identity.KeyVerifying || ks[1].RetiredAt == "" || ks[1].VerifiesUntil == "" {
		t.Fatalf("keys after rotation: %s", out)
	}
	newKid := ks[0].Kid

	// A replica started after the rotation signs with the new key and
	// verifies tokens of the old one.
	fresh, err := identity.New(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	after, err := fresh.IssueAccessToken(ctx, admin, "moat", service, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kid := jwtKid(t, after.Token); kid != newKid {
		t.Fatalf("token after rotation signed by %s, want %s", kid, newKid)
	}
	for name, s := range map[string]*identity.Service{"fresh": fresh, "running": running} {
		if _, err := s.VerifyAccessToken(ctx, before.Token, service); err != nil {
			t.Errorf("%s replica refused a token of the retired key: %v", name, err)
		}
		// The running replica has never seen the new key: the unknown kid
		// makes it reload.
		if _, err := s.VerifyAccessToken(ctx, after.Token, service); err != nil {
			t.Errorf("%s replica refused a token of the new key: %v", name, err)
		}
	}

	if out, err := runMoat(t, "keys", "list", "--data-dir", dir, "-o", "table"); err != nil || !strings.Contains(out, newKid) || !strings.Contains(out, identity.KeyVerifying) {
		t.Fatalf("keys list -o table: %v\n%s", err, out)
	}
	if _, err := runMoat(t, "keys", "rotate", "--database", "mysql://x"); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("rotate with an unknown store: %v", err)
	}
	if _, err := runMoat(t, "keys", "rotate", "-o", "yaml", "--data-dir", dir); err == nil || exitCode(err) != 2 {
		t.Fatalf("rotate -o yaml: %v", err)
	}
}
