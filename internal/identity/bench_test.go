package identity

import (
	"context"
	"testing"
)

func benchToken(b *testing.B) (*Service, string) {
	b.Helper()
	_, _, s, admin, _ := newAdmin(b)
	tok, err := s.IssueAccessToken(context.Background(), admin, "moat", serviceA,
		[]Access{acc("repository", "library/alpine", "pull", "push")})
	if err != nil {
		b.Fatal(err)
	}
	return s, tok.Token
}

// BenchmarkVerifyAccessToken compares a full ES256 verification (the cache
// purged before each call; the purge itself is one small allocation) with a
// cache hit, serially and with GOMAXPROCS goroutines.
func BenchmarkVerifyAccessToken(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		s, raw := benchToken(b)
		b.ReportAllocs()
		for b.Loop() {
			s.tokenCache.purge()
			if _, err := s.VerifyAccessToken(ctx, raw, serviceA); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		s, raw := benchToken(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.VerifyAccessToken(ctx, raw, serviceA); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		s, raw := benchToken(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.VerifyAccessToken(ctx, raw, serviceA); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkIssueAccessToken(b *testing.B) {
	_, _, s, admin, _ := newAdmin(b)
	ctx := context.Background()
	req := []Access{acc("repository", "library/alpine", "pull", "push")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.IssueAccessToken(ctx, admin, "moat", serviceA, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateBasic measures the cached path every /v2 request with
// Basic credentials takes; "uncached" pays bcrypt at the test cost (4), not
// production's 12 (about 2^8 times more).
func BenchmarkAuthenticateBasic(b *testing.B) {
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		_, _, s, _, pw := newAdmin(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		_, _, s, _, pw := newAdmin(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("uncached-cost4", func(b *testing.B) {
		_, _, s, _, pw := newAdmin(b)
		b.ReportAllocs()
		for b.Loop() {
			s.invalidateBasic()
			if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
