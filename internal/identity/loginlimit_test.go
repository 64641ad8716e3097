package identity

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestAuthenticateRegistryLimited_UserLockout(t *testing.T) {
	_, clock, s, _, pw := newAdmin(t)
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.7")
	for i := 1; i < LoginMaxUserFailures; i++ {
		if _, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, "wrong", ip); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("failure %d: %v, want ErrUnauthenticated", i, err)
		}
	}
	_, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, "wrong", ip)
	var lo *LockoutError
	if !errors.As(err, &lo) || !lo.Started || lo.ByAddress || lo.RetryAfter != LoginWindow || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("locking failure: %v (%+v)", err, lo)
	}
	// The right password is refused while locked; the first refusal is
	// reported at once, the next ones in a batch a minute later.
	clock.Advance(time.Second)
	_, err = s.AuthenticateRegistryLimited(ctx, "REG", AdminName, pw, ip)
	if !errors.As(err, &lo) || lo.Started || lo.Refused != 1 || lo.RetryAfter != LoginWindow-time.Second {
		t.Fatalf("right password while locked: %v (%+v)", err, lo)
	}
	for range 3 {
		if _, err = s.AuthenticateRegistryLimited(ctx, "reg", AdminName, pw, ip); !errors.As(err, &lo) || lo.Refused != 0 {
			t.Fatalf("refusal inside the batch: %v (%+v)", err, lo)
		}
	}
	clock.Advance(loginReportEvery)
	if _, err = s.AuthenticateRegistryLimited(ctx, "reg", AdminName, pw, ip); !errors.As(err, &lo) || lo.Refused != 4 {
		t.Fatalf("batch report: %v (%+v)", err, lo)
	}
	// Other names, and the same name on another registry, are not locked.
	if _, err := s.AuthenticateRegistryLimited(ctx, "other", AdminName, pw, ip); err != nil {
		t.Fatalf("same name on another registry: %v", err)
	}
	clock.Advance(LoginWindow)
	if _, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, pw, ip); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

func TestAuthenticateRegistryLimited_SuccessResetsTheName(t *testing.T) {
	_, _, s, _, pw := newAdmin(t)
	ctx := context.Background()
	for range 3 {
		for i := 1; i < LoginMaxUserFailures; i++ {
			if _, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, "wrong", netip.Addr{}); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("failure %d: %v", i, err)
			}
		}
		if _, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, pw, netip.Addr{}); err != nil {
			t.Fatalf("success before the limit: %v", err)
		}
	}
}

func TestAuthenticateRegistryLimited_AddressLockout(t *testing.T) {
	_, _, s, _, pw := newAdmin(t)
	ctx := context.Background()
	// A spray: one wrong password for each of many names, from one /64.
	var err error
	for i := range LoginMaxIPFailures {
		ip := netip.MustParseAddr("2001:db8::1").Next()
		for range i {
			ip = ip.Next()
		}
		_, err = s.AuthenticateRegistryLimited(ctx, "reg", "user"+string(rune('a'+i%26))+string(rune('a'+i/26)), "wrong", ip)
	}
	var lo *LockoutError
	if !errors.As(err, &lo) || !lo.Started || !lo.ByAddress {
		t.Fatalf("last failure of the spray: %v (%+v)", err, lo)
	}
	if _, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, pw, netip.MustParseAddr("2001:db8::ffff")); !errors.As(err, &lo) || !lo.ByAddress {
		t.Fatalf("right password from the locked /64: %v", err)
	}
	if _, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, pw, netip.MustParseAddr("2001:db8:0:1::1")); err != nil {
		t.Fatalf("right password from another /64: %v", err)
	}
	// An IPv4-mapped address counts as the IPv4 address.
	if loginAddrKey(netip.MustParseAddr("::ffff:192.0.2.1")) != "192.0.2.1" || loginAddrKey(netip.Addr{}) != "" {
		t.Error("loginAddrKey")
	}
}

func TestAuthenticateRegistryLimited_FailedChecksAreNotCounted(t *testing.T) {
	_, _, s, _, pw := newAdmin(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the store cannot be read: the check is not made
	for range LoginMaxUserFailures + 1 {
		_, err := s.AuthenticateRegistryLimited(ctx, "reg", AdminName, "wrong", netip.Addr{})
		if err == nil || errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrLockedOut) {
			t.Fatalf("check that could not be made: %v", err)
		}
	}
	if _, err := s.AuthenticateRegistryLimited(context.Background(), "reg", AdminName, pw, netip.Addr{}); err != nil {
		t.Fatalf("right password after checks that were not made: %v", err)
	}
}
