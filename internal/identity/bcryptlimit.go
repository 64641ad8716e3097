package identity

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/crypto/bcrypt"
)

// bcrypt verifications are bounded: each takes a core for tens of
// milliseconds at DefaultBcryptCost, so a flood of wrong passwords (each a
// distinct credential, which no cache or flight sharing absorbs) would
// otherwise take every core from pulls and pushes. At most
// Options.MaxConcurrentPasswordChecks (default GOMAXPROCS*2) run at once;
// the rest wait for a slot for as long as their request's context lives.

// errPasswordCheckWait means a context ended while waiting for a bcrypt
// slot: the check was not made, which is neither a success nor a refusal.
var errPasswordCheckWait = errors.New("identity: waiting for a password check slot")

func defaultPasswordChecks() int { return runtime.GOMAXPROCS(0) * 2 }

// compareHash is bcrypt.CompareHashAndPassword within the concurrency bound.
// A mismatch is bcrypt's error; a context that ends first wraps
// errPasswordCheckWait and the context's error.
func (s *Service) compareHash(ctx context.Context, hash []byte, pass string) error {
	select {
	case s.bcryptSlots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errPasswordCheckWait, ctx.Err())
	}
	defer func() { <-s.bcryptSlots }()
	return bcrypt.CompareHashAndPassword(hash, []byte(pass))
}
