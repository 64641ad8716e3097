package azblob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

var _ blob.Redirector = (*Store)(nil)

// clockSkew backdates a SAS's start so a storage service whose clock runs a
// little behind moat's accepts it at once.
const clockSkew = 5 * time.Minute

// ErrRedirectNeedsKey: a download URL is signed with the account key; a
// store authenticated by a SAS token cannot sign one.
var ErrRedirectNeedsKey = errors.New("azblob: download redirects need the account key (MOAT_AZBLOB_ACCOUNT_KEY) to sign SAS URLs")

// CanRedirect reports whether DownloadURL can sign URLs (the store uses the
// account key).
func (s *Store) CanRedirect() error {
	if s.key == nil {
		return ErrRedirectNeedsKey
	}
	return nil
}

// DownloadURL returns a URL of the committed blob d carrying a read-only
// service SAS for that one blob, valid for ttl. It does not check that the
// blob exists (the caller's metadata said so); a URL of a missing blob
// answers 404 from storage. Plain http is allowed in the signature only when
// the endpoint itself is http (Azurite on loopback; see ParseURL).
func (s *Store) DownloadURL(_ context.Context, d digest.Digest, ttl time.Duration) (string, error) {
	if err := s.CanRedirect(); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", fmt.Errorf("azblob: download URL lifetime %s must be positive", ttl)
	}
	name, err := blobName(d)
	if err != nil {
		return "", err
	}
	proto := sas.ProtocolHTTPS
	if u, err := url.Parse(s.cfg.serviceURL()); err == nil && u.Scheme == "http" {
		proto = sas.ProtocolHTTPSandHTTP
	}
	now := time.Now().UTC()
	q, err := sas.BlobSignatureValues{
		Protocol:      proto,
		StartTime:     now.Add(-clockSkew),
		ExpiryTime:    now.Add(ttl),
		ContainerName: s.cfg.Container,
		BlobName:      name,
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		// Content under a digest never changes; the type matches what moat
		// itself answers.
		ContentType: "application/octet-stream",
	}.SignWithSharedKey(s.key)
	if err != nil {
		return "", fmt.Errorf("azblob: signing a download URL for %s: %w", d, err)
	}
	return s.cfg.serviceURL() + s.cfg.Container + "/" + name + "?" + q.Encode(), nil
}
