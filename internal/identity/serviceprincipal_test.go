package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestServicePrincipal_Lifecycle(t *testing.T) {
	_, clock, s, _, _ := newAdmin(t)
	ctx := context.Background()

	sp, secret, err := s.CreateServicePrincipal(ctx, "builder")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	if sp.AppID == "" || sp.ObjectID == "" || sp.AppID == sp.ObjectID || sp.DisplayName != "builder" {
		t.Fatalf("created %+v", sp)
	}
	if len(sp.Secrets) != 1 || !strings.HasPrefix(secret, sp.Secrets[0].Hint) || !strings.Contains(secret, "~") {
		t.Fatalf("secrets %+v for value %q", sp.Secrets, secret)
	}
	if got := sp.Secrets[0].ExpiresAt.Sub(sp.Secrets[0].CreatedAt); got != DefaultSecretLifetime {
		t.Errorf("secret lifetime %s, want %s", got, DefaultSecretLifetime)
	}

	p, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, secret)
	if err != nil || p.ID != sp.ObjectID || p.Kind != KindServicePrincipal || p.Name != sp.AppID {
		t.Fatalf("AuthenticateServicePrincipal = %+v, %v", p, err)
	}
	// App ids compare case-insensitively, as GUIDs do.
	if _, err := s.AuthenticateServicePrincipal(ctx, strings.ToUpper(sp.AppID), secret); err != nil {
		t.Errorf("upper-case app id: %v", err)
	}

	info2, secret2, err := s.AddServicePrincipalSecret(ctx, sp.AppID, time.Hour)
	if err != nil {
		t.Fatalf("AddServicePrincipalSecret: %v", err)
	}
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, secret2); err != nil {
		t.Errorf("second secret: %v", err)
	}
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, secret); err != nil {
		t.Errorf("first secret after adding a second: %v", err)
	}

	list, err := s.ListServicePrincipals(ctx)
	if err != nil || len(list) != 1 || len(list[0].Secrets) != 2 {
		t.Fatalf("ListServicePrincipals = %+v, %v", list, err)
	}

	// The one-hour secret expires; the first one does not.
	clock.Advance(time.Hour)
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, secret2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired secret: %v, want ErrUnauthenticated", err)
	}
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, secret); err != nil {
		t.Errorf("first secret: %v", err)
	}

	if err := s.RemoveServicePrincipalSecret(ctx, sp.AppID, sp.Secrets[0].KeyID); err != nil {
		t.Fatalf("RemoveServicePrincipalSecret: %v", err)
	}
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("removed secret: %v, want ErrUnauthenticated", err)
	}
	if err := s.RemoveServicePrincipalSecret(ctx, sp.AppID, info2.KeyID); err != nil {
		t.Errorf("removing the expired secret: %v", err)
	}
	if err := s.RemoveServicePrincipalSecret(ctx, sp.AppID, info2.KeyID); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("removing it twice: %v, want ErrInvalidArgument", err)
	}

	if err := s.DeleteServicePrincipal(ctx, sp.AppID); err != nil {
		t.Fatalf("DeleteServicePrincipal: %v", err)
	}
	if _, err := s.GetServicePrincipal(ctx, sp.AppID); !errors.Is(err, ErrServicePrincipalNotFound) {
		t.Errorf("GetServicePrincipal after delete: %v", err)
	}
	if err := s.DeleteServicePrincipal(ctx, sp.AppID); !errors.Is(err, ErrServicePrincipalNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestServicePrincipal_AuthenticateRefusals(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	sp, secret, err := s.CreateServicePrincipal(ctx, "builder")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	tag, _, _ := strings.Cut(secret, "~")
	tests := []struct {
		name, appID, secret string
		notFound            bool
	}{
		{"empty id", "", secret, false},
		{"empty secret", sp.AppID, "", false},
		{"unknown app", "00000000-0000-0000-0000-000000000001", secret, true},
		{"not a uuid", "builder", secret, true},
		{"wrong secret same tag", sp.AppID, tag + "~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"no tag", sp.AppID, "plainsecret", false},
		{"too long", sp.AppID, strings.Repeat("a", 73), false},
		{"the object id is not the app id", sp.ObjectID, secret, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.AuthenticateServicePrincipal(ctx, tc.appID, tc.secret)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if got := errors.Is(err, ErrServicePrincipalNotFound); got != tc.notFound {
				t.Errorf("not-found = %v, want %v (%v)", got, tc.notFound, err)
			}
		})
	}
}

func TestServicePrincipal_InvalidArguments(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	for _, name := range []string{"", strings.Repeat("x", maxDisplayNameLen+1), "bad\nname"} {
		if _, _, err := s.CreateServicePrincipal(ctx, name); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("CreateServicePrincipal(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	sp, _, err := s.CreateServicePrincipal(ctx, "x")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	for _, d := range []time.Duration{-time.Second, MaxSecretLifetime + time.Second} {
		if _, _, err := s.AddServicePrincipalSecret(ctx, sp.AppID, d); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("AddServicePrincipalSecret(%s) = %v, want ErrInvalidArgument", d, err)
		}
	}
	for range maxSecretsPerPrincipal - 1 {
		if _, _, err := s.AddServicePrincipalSecret(ctx, sp.AppID, 0); err != nil {
			t.Fatalf("AddServicePrincipalSecret: %v", err)
		}
	}
	if _, _, err := s.AddServicePrincipalSecret(ctx, sp.AppID, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("secret %d: %v, want ErrInvalidArgument", maxSecretsPerPrincipal+1, err)
	}
	if _, _, err := s.AddServicePrincipalSecret(ctx, "00000000-0000-0000-0000-000000000001", 0); !errors.Is(err, ErrServicePrincipalNotFound) {
		t.Errorf("unknown app: %v", err)
	}
}

func TestTenantID_StableAcrossServices(t *testing.T) {
	store := openStore(t)
	clock := newTestClock()
	a := newService(t, store, clock)
	b := newService(t, store, clock)
	ctx := context.Background()
	ta, err := a.TenantID(ctx)
	if err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	tb, err := b.TenantID(ctx)
	if err != nil || ta != tb {
		t.Fatalf("second service's TenantID = %q, %v; want %q", tb, err, ta)
	}
	if again, _ := a.TenantID(ctx); again != ta {
		t.Errorf("TenantID changed from %q to %q", ta, again)
	}
}
