package identity

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestPasswordChecks_Bounded(t *testing.T) {
	store, clock, _, _, pw := newAdmin(t)
	s := newService(t, store, clock, func(o *Options) { o.MaxConcurrentPasswordChecks = 1 })
	s.bcryptSlots <- struct{}{} // a check in progress holds the only slot

	// A request waits with its context and gives up with it: neither a
	// success nor a refusal.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.AuthenticateBasic(ctx, AdminName, pw)
	if !errors.Is(err, errPasswordCheckWait) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("check without a slot: %v", err)
	}

	// A waiting request proceeds when the slot frees.
	done := make(chan error, 1)
	go func() {
		_, err := s.AuthenticateBasic(context.Background(), AdminName, pw)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("check ran while the slot was taken: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	<-s.bcryptSlots
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("check after the slot freed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("check did not run after the slot freed")
	}
	if len(s.bcryptSlots) != 0 {
		t.Error("the check did not give its slot back")
	}
}

func TestPasswordChecks_Default(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	if got, want := cap(s.bcryptSlots), runtime.GOMAXPROCS(0)*2; got != want {
		t.Fatalf("bcrypt slots %d, want GOMAXPROCS*2 = %d", got, want)
	}
	if _, err := New(context.Background(), openStore(t), Options{MaxConcurrentPasswordChecks: -1}); err == nil {
		t.Fatal("negative MaxConcurrentPasswordChecks accepted")
	}
}
