package identity

// The Defender-for-Cloud scanner principal.
//
// Every deployment has one built-in service principal standing for
// Microsoft Defender for Cloud's vulnerability scanner (DESIGN.md §3: a
// trusted service that pulls read-only without a role assignment). It is an
// ordinary service principal with a fixed, documented application (client)
// id, DefenderScannerAppID, so it obtains tokens like any other: the
// client-credentials grant at /{tenant}/oauth2/v2.0/token
// (azidentity.ClientSecretCredential), then the data plane's token flow.
// Its client secret is created when the principal is (moat serve writes it
// to the data directory once, see cmd/moat); more can be added and removed
// with the service-principal secret functions.
//
// What makes it special is decided here and in the data plane:
//   - IsDefenderScanner recognises it (kind servicePrincipal, the fixed app
//     id, and the stored object id, so a Principal value that only claims
//     the app id is not it);
//   - Authorize grants it pull on every repository and the catalog listing
//     of every registry, and nothing else (authorizeScanner);
//   - the data plane classifies it as netrule.DefenderForCloud.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// DefenderScannerAppID is the client id of the built-in Defender scanner
// principal, the same in every moat deployment. (It is moat's own value,
// not Microsoft's first-party id.)
const DefenderScannerAppID = "6d0e0c3a-5e7b-4f0b-9d43-1c2a8f5e0d11"

// defenderScannerName is its display name.
const defenderScannerName = "Microsoft Defender for Cloud (moat scanner)"

// EnsureDefenderScanner creates the scanner principal if the deployment has
// none. Its client secret (which moat cannot show again) is handed to save
// before the principal is stored, so a secret that could not be saved never
// becomes the only one; created reports whether this call created it.
func (s *Service) EnsureDefenderScanner(ctx context.Context, save func(secret string) error) (created bool, err error) {
	_, err = s.store.GetPrincipalByName(ctx, KindServicePrincipal, DefenderScannerAppID)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, meta.ErrNotFound) {
		return false, fmt.Errorf("identity: reading the Defender scanner principal: %w", err)
	}
	now := s.now().UTC()
	sec, value, err := s.newSecret(now, MaxSecretLifetime)
	if err != nil {
		return false, err
	}
	raw, err := json.Marshal(spProperties{DisplayName: defenderScannerName, Secrets: []spSecret{sec}})
	if err != nil {
		return false, fmt.Errorf("identity: encoding the Defender scanner principal: %w", err)
	}
	if err := save(value); err != nil {
		return false, fmt.Errorf("identity: saving the Defender scanner secret: %w", err)
	}
	p := meta.Principal{ID: uuid.NewString(), Kind: KindServicePrincipal, Name: DefenderScannerAppID, Properties: raw}
	err = s.store.PutPrincipal(ctx, p)
	if errors.Is(err, meta.ErrAlreadyExists) {
		// Another replica created it first; the secret it saved is the one.
		s.log.WarnContext(ctx, "the Defender scanner principal was created concurrently; the secret saved here does not work", "app_id", DefenderScannerAppID)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("identity: creating the Defender scanner principal: %w", err)
	}
	s.log.InfoContext(ctx, "created the Defender scanner principal", "app_id", DefenderScannerAppID, "object_id", p.ID)
	return true, nil
}

// IsDefenderScanner reports whether p is the deployment's Defender scanner
// principal. An error means the store could not be read.
func (s *Service) IsDefenderScanner(ctx context.Context, p Principal) (bool, error) {
	if p.Kind != KindServicePrincipal || p.Name != DefenderScannerAppID || p.ID == "" {
		return false, nil
	}
	if id := s.scannerID.Load(); id != nil && *id == p.ID {
		return true, nil
	}
	stored, err := s.store.GetPrincipalByName(ctx, KindServicePrincipal, DefenderScannerAppID)
	if errors.Is(err, meta.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("identity: reading the Defender scanner principal: %w", err)
	}
	id := stored.ID
	s.scannerID.Store(&id)
	return stored.ID == p.ID, nil
}

// scannerActions is what the scanner may do on a repository.
var scannerActions = []string{ActionPull}

// authorizeScanner answers Authorize for the scanner (ok=true): pull on
// repositories and the catalog listing, nothing else.
func (s *Service) authorizeScanner(ctx context.Context, p Principal, requested []Access) ([]Access, bool, error) {
	is, err := s.IsDefenderScanner(ctx, p)
	if err != nil {
		return nil, true, err
	}
	if !is {
		return nil, false, nil
	}
	read := role{name: "Defender scanner", repositoryActions: scannerActions, catalog: true}
	return grant([]role{read}, requested), true, nil
}
