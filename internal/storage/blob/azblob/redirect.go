package azblob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

var _ blob.Redirector = (*Store)(nil)

// clockSkew backdates a SAS's start so a storage service whose clock runs a
// little behind moat's accepts it at once.
const clockSkew = 5 * time.Minute

// ErrRedirectNeedsKey: a download URL is signed with the account key or a
// user delegation key; a store authenticated by a SAS token has neither.
var ErrRedirectNeedsKey = errors.New("azblob: download redirects need the account key (MOAT_AZBLOB_ACCOUNT_KEY) or a managed identity (MOAT_AZBLOB_CREDENTIAL=managed-identity) to sign SAS URLs; a SAS token cannot sign them")

// ErrRedirectPathStyle: the Azure SDK names the account of a user
// delegation SAS after the first label of the endpoint's host, so under a
// managed identity an endpoint such as https://127.0.0.1:10000/<account>
// (Azurite's path style) would sign URLs for the wrong account.
var ErrRedirectPathStyle = errors.New("azblob: download redirects under a managed identity need an endpoint whose host starts with the account name (https://<account>.blob.core.windows.net/), not a path-style one")

// maxDelegation is Azure's limit on a user delegation key's lifetime.
const maxDelegation = 7 * 24 * time.Hour

// CanRedirect reports whether DownloadURL can sign URLs: with the account
// key, or under a managed identity with a user delegation key.
func (s *Store) CanRedirect() error {
	switch {
	case s.key != nil:
		return nil
	case s.token == nil:
		return ErrRedirectNeedsKey
	}
	if !s.cfg.hostStyle() {
		return ErrRedirectPathStyle
	}
	return nil
}

// hostStyle reports whether the endpoint's host begins with the account
// name as its own label, which is where the SDK looks for it.
func (c Config) hostStyle() bool {
	u, err := url.Parse(c.serviceURL())
	if err != nil {
		return false
	}
	label, _, _ := strings.Cut(u.Hostname(), ".")
	return label == c.Account
}

// delegation caches the user delegation key a store under a managed
// identity signs download URLs with: one Get User Delegation Key per key
// lifetime rather than per redirect.
type delegation struct {
	mu     sync.Mutex
	svc    *service.Client
	cred   *service.UserDelegationCredential
	expiry time.Time
}

// userDelegation returns a user delegation credential valid at least until
// until, asking storage for a new key (valid an hour longer, so it serves
// the next redirects too) when the cached one ends sooner.
func (s *Store) userDelegation(ctx context.Context, now, until time.Time) (*service.UserDelegationCredential, error) {
	d := &s.delegation
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cred != nil && !d.expiry.Before(until) {
		return d.cred, nil
	}
	if d.svc == nil {
		opts := &service.ClientOptions{}
		opts.Transport = s.cfg.Transport
		svc, err := service.NewClient(s.cfg.serviceURL(), s.token, opts)
		if err != nil {
			return nil, fmt.Errorf("service client: %w", err)
		}
		d.svc = svc
	}
	expiry := until.Add(time.Hour)
	if limit := now.Add(maxDelegation - time.Minute); expiry.After(limit) {
		expiry = limit
	}
	cred, err := d.svc.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  ptr(now.Add(-clockSkew).Format(sas.TimeFormat)),
		Expiry: ptr(expiry.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("get user delegation key: %w", err)
	}
	d.cred, d.expiry = cred, expiry.Truncate(time.Second)
	return cred, nil
}

// DownloadURL returns a URL of the committed blob d carrying a read-only SAS
// for that one blob, valid for ttl. It does not check that the blob exists
// (the caller's metadata said so); a URL of a missing blob answers 404 from
// storage. With the account key it is a service SAS; under a managed
// identity a user delegation SAS, whose key the identity asks storage for
// (it needs the generateUserDelegationKey action, which Storage Blob Data
// Contributor grants), and ttl is at most 7 days. Plain http is allowed in
// the signature only when the endpoint itself is http (Azurite on loopback;
// see ParseURL).
func (s *Store) DownloadURL(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error) {
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
	v := sas.BlobSignatureValues{
		Protocol:      proto,
		StartTime:     now.Add(-clockSkew),
		ExpiryTime:    now.Add(ttl),
		ContainerName: s.cfg.Container,
		BlobName:      name,
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		// Content under a digest never changes; the type matches what moat
		// itself answers.
		ContentType: "application/octet-stream",
	}
	var q sas.QueryParameters
	if s.key != nil {
		q, err = v.SignWithSharedKey(s.key)
	} else {
		if ttl > maxDelegation-time.Minute {
			return "", fmt.Errorf("azblob: download URL lifetime %s exceeds what a user delegation key allows (7 days)", ttl)
		}
		var udc *service.UserDelegationCredential
		if udc, err = s.userDelegation(ctx, now, v.ExpiryTime); err == nil {
			q, err = v.SignWithUserDelegation(udc)
		}
	}
	if err != nil {
		return "", fmt.Errorf("azblob: signing a download URL for %s: %w", d, err)
	}
	return s.cfg.serviceURL() + s.cfg.Container + "/" + name + "?" + q.Encode(), nil
}
