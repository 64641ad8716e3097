package identity

import (
	"context"
	"errors"
	"slices"
)

// Anonymous pull: a registry with anonymousPullEnabled (Standard and Premium)
// lets clients without credentials pull. The data plane decides whether the
// registry allows it (it holds the registry's configuration); this package
// names the anonymous principal and decides what it may do: pull on
// repositories, nothing else (no catalog, no push, no delete).

const (
	// KindAnonymous is the kind of the anonymous caller.
	KindAnonymous = "anonymous"
	// anonymousID is the anonymous principal's id; no stored principal has
	// it (stored ids are UUIDs).
	anonymousID = "anonymous"
)

// AnonymousPrincipal is the caller without credentials at registry.
func AnonymousPrincipal(registry string) Principal {
	return Principal{ID: anonymousID, Kind: KindAnonymous, Name: anonymousID, Registry: registry}
}

// AnonymousGrant is what an anonymous caller gets of requested: "pull" on
// repositories, in the shape Authorize answers (one entry per request, empty
// actions where nothing is left). A pure function.
func AnonymousGrant(requested []Access) []Access {
	out := make([]Access, 0, len(requested))
	for _, req := range requested {
		acts := []string{}
		if req.Type == TypeRepository && slices.Contains(req.Actions, ActionPull) {
			acts = append(acts, ActionPull)
		}
		out = append(out, Access{Type: req.Type, Name: req.Name, Actions: acts})
	}
	return out
}

// IssueAnonymousToken signs an access token for the anonymous caller of
// registry (whose anonymous pull the caller has checked) with audience
// service, granting AnonymousGrant(requested).
func (s *Service) IssueAnonymousToken(ctx context.Context, registry, service string, requested []Access) (Token, error) {
	if service == "" || registry == "" {
		return Token{}, errors.New("identity: issuing an anonymous token for an empty registry or service")
	}
	return s.signAccessToken(ctx, AnonymousPrincipal(registry), service, AnonymousGrant(requested))
}
