package azblob

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Environment variables that carry the credential, kept out of the URL so it
// never shows up in process listings, logs or configuration dumps.
const (
	EnvAccountKey = "MOAT_AZBLOB_ACCOUNT_KEY"
	EnvSAS        = "MOAT_AZBLOB_SAS"
	// EnvCredential=managed-identity selects the host's managed identity;
	// EnvClientID then names a user-assigned one by its client id.
	EnvCredential = "MOAT_AZBLOB_CREDENTIAL" //nolint:gosec // the name of a variable, not a credential
	EnvClientID   = "MOAT_AZBLOB_CLIENT_ID"

	// CredentialManagedIdentity is the one value EnvCredential takes.
	CredentialManagedIdentity = "managed-identity"
)

// Config says where the store lives and how to authenticate.
type Config struct {
	// Account is the storage account name.
	Account string
	// Container holds the store; it is created if missing.
	Container string
	// Endpoint is the blob service URL; empty means
	// https://<Account>.blob.core.windows.net/. Azurite's is
	// http://127.0.0.1:10000/devstoreaccount1.
	Endpoint string
	// AccountKey (base64) selects shared-key authentication.
	AccountKey string
	// SAS (a query string, with or without '?') selects a shared access
	// signature; it needs read, add, create, write and delete on blobs.
	SAS string
	// ManagedIdentity selects Microsoft Entra tokens of the host's managed
	// identity, obtained by azidentity (IDENTITY_ENDPOINT/IDENTITY_HEADER
	// as on App Service and Azure Arc, else the instance metadata service).
	ManagedIdentity bool
	// ClientID names a user-assigned managed identity by its client id;
	// empty means the system-assigned identity.
	ClientID string

	// Transport, when set, carries the requests to storage (not those to
	// the managed identity endpoint). Only code sets it, never the URL;
	// tests use it to trust an emulator's self-signed certificate.
	Transport policy.Transporter

	// BlockSize is the size of the blocks Append stages (default 8 MiB).
	BlockSize int
	// Concurrency is how many blocks one Append stages at a time (default 4).
	Concurrency int
}

const (
	defaultBlockSize   = 8 << 20
	maxBlockSize       = 100 << 20
	defaultConcurrency = 4
	maxConcurrency     = 64
)

// String describes c without its secrets.
func (c Config) String() string {
	cred := "none"
	switch {
	case c.AccountKey != "":
		cred = "account key"
	case c.SAS != "":
		cred = "SAS"
	case c.ManagedIdentity && c.ClientID != "":
		cred = "managed identity, client id " + c.ClientID
	case c.ManagedIdentity:
		cred = "managed identity (system-assigned)"
	}
	return fmt.Sprintf("azblob account %q container %q endpoint %q (credential: %s)", c.Account, c.Container, c.serviceURL(), cred)
}

// LogValue keeps the credential out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c Config) serviceURL() string {
	if c.Endpoint != "" {
		return strings.TrimSuffix(c.Endpoint, "/") + "/"
	}
	return "https://" + c.Account + ".blob.core.windows.net/"
}

// ParseURL parses the --blob-store form
//
//	azblob://<account>/<container>[?endpoint=<blob service URL>]
//
// and takes the credential from the environment, exactly one of:
// MOAT_AZBLOB_ACCOUNT_KEY (the account key), MOAT_AZBLOB_SAS (a SAS token) or
// MOAT_AZBLOB_CREDENTIAL=managed-identity (with MOAT_AZBLOB_CLIENT_ID for a
// user-assigned identity). The endpoint defaults to
// https://<account>.blob.core.windows.net/; plain http is accepted only for a
// loopback host (Azurite), since a SAS travels in the request, and never with
// managed identity, whose bearer tokens need TLS. Credentials in the URL
// itself are refused.
func ParseURL(s string) (Config, error) {
	return parseURL(s, os.Getenv)
}

func parseURL(s string, getenv func(string) string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("blob store URL: %w", err)
	}
	if u.Scheme != "azblob" {
		return Config{}, fmt.Errorf("blob store URL %q: scheme must be azblob", redact(u))
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("blob store URL %q: credentials do not belong in the URL; set %s or %s", redact(u), EnvAccountKey, EnvSAS)
	}
	if u.Opaque != "" || u.Fragment != "" || u.Port() != "" {
		return Config{}, fmt.Errorf("blob store URL %q: want azblob://<account>/<container>", redact(u))
	}
	c := Config{Account: u.Hostname(), Container: strings.TrimPrefix(u.Path, "/")}
	if err := validAccount(c.Account); err != nil {
		return Config{}, fmt.Errorf("blob store URL %q: %w", redact(u), err)
	}
	if err := validContainer(c.Container); err != nil {
		return Config{}, fmt.Errorf("blob store URL %q: %w", redact(u), err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("blob store URL %q: query: %w", redact(u), err)
	}
	for k, v := range q {
		switch {
		case k != "endpoint":
			return Config{}, fmt.Errorf("blob store URL %q: unknown parameter %q (known: endpoint)", redact(u), k)
		case len(v) != 1:
			return Config{}, fmt.Errorf("blob store URL %q: parameter %q given %d times", redact(u), k, len(v))
		}
		c.Endpoint = v[0]
	}
	if c.Endpoint != "" {
		if err := validEndpoint(c.Endpoint); err != nil {
			return Config{}, fmt.Errorf("blob store URL %q: %w", redact(u), err)
		}
	}
	c.AccountKey, c.SAS, c.ClientID = getenv(EnvAccountKey), getenv(EnvSAS), getenv(EnvClientID)
	switch getenv(EnvCredential) {
	case "":
	case CredentialManagedIdentity:
		c.ManagedIdentity = true
	default:
		// The value is not echoed: a secret may have landed there by mistake.
		return Config{}, fmt.Errorf("azblob: %s must be %s or unset (to use %s or %s)", EnvCredential, CredentialManagedIdentity, EnvAccountKey, EnvSAS)
	}
	if err := c.validCredential(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) validate() error {
	if err := validAccount(c.Account); err != nil {
		return err
	}
	if err := validContainer(c.Container); err != nil {
		return err
	}
	if c.Endpoint != "" {
		if err := validEndpoint(c.Endpoint); err != nil {
			return err
		}
	}
	if c.BlockSize < 0 || c.BlockSize > maxBlockSize {
		return fmt.Errorf("block size %d out of range 1..%d", c.BlockSize, maxBlockSize)
	}
	if c.Concurrency < 0 || c.Concurrency > maxConcurrency {
		return fmt.Errorf("concurrency %d out of range 1..%d", c.Concurrency, maxConcurrency)
	}
	return c.validCredential()
}

func (c Config) validCredential() error {
	var set []string
	if c.ManagedIdentity {
		set = append(set, EnvCredential+"="+CredentialManagedIdentity)
	}
	if c.AccountKey != "" {
		set = append(set, EnvAccountKey)
	}
	if c.SAS != "" {
		set = append(set, EnvSAS)
	}
	switch {
	case len(set) > 1:
		return fmt.Errorf("azblob: %s are all set; choose one credential", strings.Join(set, ", "))
	case len(set) == 0:
		return fmt.Errorf("azblob: no credential: set %s (account key), %s (SAS token) or %s=%s", EnvAccountKey, EnvSAS, EnvCredential, CredentialManagedIdentity)
	case c.ClientID != "" && !c.ManagedIdentity:
		return fmt.Errorf("azblob: %s names a user-assigned managed identity, but %s is not %s", EnvClientID, EnvCredential, CredentialManagedIdentity)
	case c.ClientID != "" && !isGUID(c.ClientID):
		return fmt.Errorf("azblob: %s %q is not a client id (want a GUID such as 6a2f3b1c-0000-4000-8000-000000000000)", EnvClientID, c.ClientID)
	case c.ManagedIdentity && strings.HasPrefix(c.serviceURL(), "http:"):
		return fmt.Errorf("azblob: managed identity sends bearer tokens, which need an https endpoint, not %s", c.serviceURL())
	case c.SAS != "":
		q, err := url.ParseQuery(strings.TrimPrefix(c.SAS, "?"))
		if err != nil || q.Get("sig") == "" {
			// The token itself is not repeated: it is a secret.
			return fmt.Errorf("azblob: %s is not a SAS token (want a query string with sig=...)", EnvSAS)
		}
	}
	return nil
}

// isGUID reports whether s has the 8-4-4-4-12 hex shape of an Entra client id.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return false
			}
		}
	}
	return true
}

// validAccount checks Azure's rule: 3-24 lower-case letters and digits.
func validAccount(a string) error {
	if len(a) < 3 || len(a) > 24 {
		return fmt.Errorf("account name %q: want 3-24 lower-case letters and digits", a)
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("account name %q: want 3-24 lower-case letters and digits", a)
		}
	}
	return nil
}

// validContainer checks Azure's rule: 3-63 lower-case letters, digits and
// single hyphens, starting and ending with a letter or digit.
func validContainer(n string) error {
	bad := fmt.Errorf("container name %q: want 3-63 lower-case letters, digits and single hyphens, not at either end", n)
	if len(n) < 3 || len(n) > 63 || n[0] == '-' || n[len(n)-1] == '-' || strings.Contains(n, "--") {
		return bad
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return bad
		}
	}
	return nil
}

func validEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	switch {
	case u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("endpoint %q: want an http(s) URL of the blob service", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("endpoint %q: no credentials, query or fragment allowed", u.Redacted())
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return errors.New("endpoint " + s + ": plain http only to a loopback host (Azurite); use https")
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redact drops any user info from u for error messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
