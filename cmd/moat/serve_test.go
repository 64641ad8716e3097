package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func defaults(t *testing.T) *serveOptions {
	t.Helper()
	o := &serveOptions{}
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.register(f)
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestDefaults(t *testing.T) {
	o := defaults(t)
	if o.dataDir != "./moat-data" || o.listen != "127.0.0.1:5443" || o.defaultRegistry != "moat" ||
		o.domain != "localhost" || o.logLevel != "info" || o.logFormat != "text" || len(o.trustedProxies) != 0 ||
		o.shutdownTimeout != 30*time.Second || o.uploadTTL != 24*time.Hour || o.maxManifestSize != 4<<20 || o.insecureHTTP {
		t.Fatalf("defaults = %+v", o)
	}
	if err := o.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestEveryFlagNamesItsEnvironmentVariable(t *testing.T) {
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	(&serveOptions{}).register(f)
	f.VisitAll(func(fl *pflag.Flag) {
		want := "[$MOAT_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_")) + "]"
		if !strings.HasSuffix(fl.Usage, want) {
			t.Errorf("--%s usage %q lacks %s", fl.Name, fl.Usage, want)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(o *serveOptions)
		want string // "" = valid
	}{
		{"cert without key", func(o *serveOptions) { o.tlsCert = "c.pem" }, "--tls-cert and --tls-key go together"},
		{"key without cert", func(o *serveOptions) { o.tlsKey = "k.pem" }, "--tls-cert and --tls-key go together"},
		{"cert and key", func(o *serveOptions) { o.tlsCert, o.tlsKey = "c.pem", "k.pem" }, ""},
		{"insecure with cert", func(o *serveOptions) { o.tlsCert, o.tlsKey, o.insecureHTTP = "c", "k", true }, "contradict"},
		{"empty data dir", func(o *serveOptions) { o.dataDir = "" }, "--data-dir"},
		{"zero shutdown timeout", func(o *serveOptions) { o.shutdownTimeout = 0 }, "--shutdown-timeout"},
		{"negative upload ttl", func(o *serveOptions) { o.uploadTTL = -time.Hour }, "--upload-ttl"},
		{"zero manifest size", func(o *serveOptions) { o.maxManifestSize = 0 }, "--max-manifest-size"},
		{"zero body stall timeout", func(o *serveOptions) { o.bodyStall = 0 }, "--body-stall-timeout"},
		{"negative blob redirect ttl", func(o *serveOptions) { o.blobRedirectTTL = -time.Second }, "--blob-redirect-ttl"},
		{"listen without port", func(o *serveOptions) { o.listen = "127.0.0.1" }, "--listen"},
		{"bad domain", func(o *serveOptions) { o.domain = "under_score.test" }, "--domain"},
		{"domain upper case and trailing dot", func(o *serveOptions) { o.domain = "Registry.Example." }, ""},
		{"registry with hyphen", func(o *serveOptions) { o.defaultRegistry = "my-reg" }, "--default-registry"},
		{"registry upper case", func(o *serveOptions) { o.defaultRegistry = "MyReg" }, ""},
		{"registry too long", func(o *serveOptions) { o.defaultRegistry = strings.Repeat("a", 51) }, "--default-registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaults(t)
			tt.mod(o)
			err := o.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate = %v, want %q", err, tt.want)
			}
		})
	}
	o := defaults(t)
	o.domain, o.defaultRegistry = "Registry.Example.", "MyReg"
	if err := o.validate(); err != nil || o.domain != "registry.example" || o.defaultRegistry != "myreg" {
		t.Fatalf("normalization: %v %q %q", err, o.domain, o.defaultRegistry)
	}
}

// TestInsecureHTTPRefusedBeforeAnythingIsWritten runs serve in-process.
func TestInsecureHTTPRefusedBeforeAnythingIsWritten(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:5443", "[::]:5443", ":5443", "192.0.2.1:5443"} {
		o := defaults(t)
		o.insecureHTTP, o.listen = true, listen
		o.dataDir = filepath.Join(t.TempDir(), "data")
		err := serve(context.Background(), o, func(string) (string, bool) { return "", false }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "only allowed on a loopback address") {
			t.Errorf("%s: err = %v", listen, err)
		}
		if _, err := os.Stat(o.dataDir); !os.IsNotExist(err) {
			t.Errorf("%s: data dir created: %v", listen, err)
		}
	}
}

func TestCertificateNames(t *testing.T) {
	base := []string{"localhost", "*.localhost", "registry.test", "*.registry.test", "moat.registry.test", "127.0.0.1", "::1"}
	tests := []struct {
		listen string
		extra  []string
	}{
		{"127.0.0.1:5443", []string{"127.0.0.1"}},
		{"[::1]:5443", []string{"::1"}},
		{"192.0.2.10:5443", []string{"192.0.2.10"}},
		{"Reg.Example.COM:5443", []string{"reg.example.com"}},
	}
	for _, tt := range tests {
		got := certificateNames(tt.listen, "registry.test", "moat")
		if want := append(slices.Clone(base), tt.extra...); !slices.Equal(got, want) {
			t.Errorf("certificateNames(%q) = %q, want %q", tt.listen, got, want)
		}
	}
	// On every interface, the interface addresses are added (loopback at least).
	got := certificateNames("0.0.0.0:5443", "registry.test", "moat")
	if len(got) <= len(base) {
		t.Errorf("certificateNames(0.0.0.0) added nothing: %q", got)
	}
	for _, n := range got {
		if n == "0.0.0.0" || n == "::" {
			t.Errorf("unspecified address in names: %q", got)
		}
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		tls  bool
		addr string
		want string
	}{
		{true, "127.0.0.1:5443", "https://127.0.0.1:5443"},
		{false, "127.0.0.1:80", "http://127.0.0.1:80"},
		{true, "[::1]:5443", "https://[::1]:5443"},
		{true, "0.0.0.0:5443", "https://localhost:5443"},
		{true, "[::]:5443", "https://localhost:5443"},
	}
	for _, tt := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := baseURL(tt.tls, addr); got != tt.want {
			t.Errorf("baseURL(%v, %s) = %s, want %s", tt.tls, tt.addr, got, tt.want)
		}
	}
}

func openStores(t *testing.T) (meta.Store, *identity.Service, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ids, err := identity.New(context.Background(), store, identity.Options{Logger: quiet, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	return store, ids, dir
}

func TestEnsureAdminGeneratedPasswordFile(t *testing.T) {
	ctx := context.Background()
	_, ids, dir := openStores(t)
	pwFile := filepath.Join(dir, adminPasswordFile)

	note, err := ensureAdmin(ctx, ids, "", dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if note != "password in "+pwFile {
		t.Errorf("note = %q", note)
	}
	fi, err := os.Stat(pwFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password: %v %v", fi, err)
	}
	b, _ := os.ReadFile(pwFile)
	pw := strings.TrimSpace(string(b))
	if strings.Contains(note, pw) {
		t.Fatal("note contains the password")
	}
	if _, err := ids.AuthenticateBasic(ctx, identity.AdminName, pw); err != nil {
		t.Fatalf("the written password does not log in: %v", err)
	}

	// Restart without the variable: the file stays, the password too.
	if note, err := ensureAdmin(ctx, ids, "", dir, quiet); err != nil || note != "password in "+pwFile {
		t.Fatalf("restart: %q, %v", note, err)
	}
	if b2, _ := os.ReadFile(pwFile); string(b2) != string(b) {
		t.Fatal("password file rewritten on restart")
	}

	// The variable resets the password and removes the stale file.
	note, err = ensureAdmin(ctx, ids, "from-env-123", dir, quiet)
	if err != nil || note != "password from $MOAT_ADMIN_PASSWORD" {
		t.Fatalf("env: %q, %v", note, err)
	}
	if _, err := os.Stat(pwFile); !os.IsNotExist(err) {
		t.Fatalf("stale admin-password kept: %v", err)
	}
	if _, err := ids.AuthenticateBasic(ctx, identity.AdminName, "from-env-123"); err != nil {
		t.Fatalf("env password does not log in: %v", err)
	}

	// Later start without the variable and without the file.
	if note, err := ensureAdmin(ctx, ids, "", dir, quiet); err != nil || !strings.Contains(note, "set earlier") {
		t.Fatalf("no file: %q, %v", note, err)
	}
}

func TestEnsureAdminFromEnvironmentWritesNoFile(t *testing.T) {
	_, ids, dir := openStores(t)
	if _, err := ensureAdmin(context.Background(), ids, "chosen-password", dir, quiet); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, adminPasswordFile)); !os.IsNotExist(err) {
		t.Fatalf("admin-password written: %v", err)
	}
}

func TestEnsureDefaultRegistry(t *testing.T) {
	ctx := context.Background()
	store, _, _ := openStores(t)
	if err := ensureDefaultRegistry(ctx, store, "moat", quiet); err != nil {
		t.Fatal(err)
	}
	r, err := store.GetRegistry(ctx, "moat")
	if err != nil {
		t.Fatal(err)
	}
	want := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/moat"
	if r.ResourceID != want || r.Location != "local" || r.SKU != "Premium" || string(r.Properties) != "{}" {
		t.Fatalf("registry = %+v", r)
	}
	// Idempotent, and an existing record is left alone.
	if err := ensureDefaultRegistry(ctx, store, "moat", quiet); err != nil {
		t.Fatal(err)
	}
	again, err := store.GetRegistry(ctx, "moat")
	if err != nil || again.Version != r.Version {
		t.Fatalf("second start changed the registry: %+v, %v", again, err)
	}
}
