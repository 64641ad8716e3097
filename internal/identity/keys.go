package identity

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Key states of SigningKeyInfo.
const (
	// KeyActive signs new tokens (the newest key not retired).
	KeyActive = "active"
	// KeyStandby is not retired but not the newest either (two replicas
	// created a first key at once); it verifies, and the next rotation
	// retires it.
	KeyStandby = "standby"
	// KeyVerifying is retired: it signs nothing, and verifies the tokens it
	// signed until VerifiesUntil.
	KeyVerifying = "verifying"
	// KeyExpired is retired long enough that every token it signed has
	// expired; it verifies nothing.
	KeyExpired = "expired"
)

// SigningKeyInfo describes one token-signing key for operators; it carries
// no key material.
type SigningKeyInfo struct {
	ID        string     `json:"kid"`
	Algorithm string     `json:"alg"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"createdAt"`
	RetiredAt *time.Time `json:"retiredAt,omitempty"`
	// VerifiesUntil is when a retired key stops verifying.
	VerifiesUntil *time.Time `json:"verifiesUntil,omitempty"`
}

// SigningKeys lists the signing keys in the store, newest first, with the
// state each is in by this Service's clock and token lifetime.
func (s *Service) SigningKeys(ctx context.Context) ([]SigningKeyInfo, error) {
	stored, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("identity: listing signing keys: %w", err)
	}
	now := s.now()
	signer, _ := s.parseKeys(ctx, stored)
	out := make([]SigningKeyInfo, 0, len(stored))
	for _, k := range stored {
		info := SigningKeyInfo{ID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt.UTC()}
		switch {
		case k.RetiredAt != nil:
			r := k.RetiredAt.UTC()
			until := r.Add(s.retiredKeyWindow())
			info.RetiredAt, info.VerifiesUntil = &r, &until
			info.State = KeyVerifying
			if !now.Before(until) {
				info.State = KeyExpired
			}
		case k.ID == signer.id:
			info.State = KeyActive
		default:
			info.State = KeyStandby
		}
		out = append(out, info)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}
