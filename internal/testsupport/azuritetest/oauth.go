package azuritetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/testsupport/missing"
)

// HostStyleName is the production-style host name of the OAuth Azurite's
// account (Azurite takes the account from the first label). It does not
// resolve; the client of OAuthServer.Client dials it to the server.
const HostStyleName = Account + ".blob.localhost"

// StorageResource is the resource a storage client asks a managed identity
// endpoint for, and the audience Azurite wants in the token.
const StorageResource = "https://storage.azure.com"

var (
	oauthOnce   sync.Once
	oauthSrv    *OAuthServer
	oauthErr    error
	oauthServer *exec.Cmd
	oauthDir    string

	identityOnce    sync.Once
	processIdentity *Identity
)

// OAuthServer is a second Azurite, which this test process starts with
// --oauth basic over HTTPS (Azurite takes bearer tokens only so), with a
// self-signed certificate made for it. In "basic" mode Azurite checks a
// token's issuer (an Azure AD one), audience and lifetime but not its
// signature, so a test's Identity can stand in for Azure AD. It accepts
// the well-known account key too, for a test to prepare or inspect data.
type OAuthServer struct {
	// Addr is its loopback address, host:port.
	Addr string
	// CAFile holds its certificate (PEM), for SSL_CERT_FILE of a child
	// process that must trust it.
	CAFile string
	pool   *x509.CertPool
}

// Endpoint is its path-style blob service URL, https://127.0.0.1:port/devstoreaccount1.
func (s *OAuthServer) Endpoint() string { return "https://" + s.Addr + "/" + Account }

// HostStyleEndpoint is its production-style blob service URL,
// https://devstoreaccount1.blob.localhost:port; only Client reaches it.
func (s *OAuthServer) HostStyleEndpoint() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	return "https://" + net.JoinHostPort(HostStyleName, port)
}

// Client trusts the server's certificate and dials HostStyleName to it.
func (s *OAuthServer) Client() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(addr); err == nil && host == HostStyleName {
				addr = s.Addr
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// OAuth returns the OAuth Azurite, starting it on first use, or skips (fails
// under CI=true) the test when it cannot be had. MOAT_TEST_AZURITE_BLOB_ENDPOINT
// does not name it: scripts/test.sh's Azurite takes no tokens.
func OAuth(t testing.TB) *OAuthServer {
	t.Helper()
	oauthOnce.Do(func() { oauthSrv, oauthErr = startOAuth() })
	if oauthErr != nil {
		missing.Skip(t, "azurite with OAuth unavailable: %v (install node and npm)", oauthErr)
	}
	return oauthSrv
}

func startOAuth() (*OAuthServer, error) {
	bin, err := install()
	if err != nil {
		return nil, err
	}
	oauthDir, err = os.MkdirTemp("", "moat-azurite-oauth-")
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	certFile, keyFile := filepath.Join(oauthDir, "cert.pem"), filepath.Join(oauthDir, "key.pem")
	pool, err := selfSigned(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	s := &OAuthServer{CAFile: certFile, pool: pool}
	cmd, base, err := run(bin, filepath.Join(oauthDir, "data"), s.Client(), "--oauth", "basic", "--cert", certFile, "--key", keyFile)
	if err != nil {
		return nil, err
	}
	oauthServer = cmd
	s.Addr = base[len("https://"):]
	return s, nil
}

// selfSigned writes a certificate for 127.0.0.1, localhost and HostStyleName
// and its key, and returns a pool trusting it.
func selfSigned(certFile, keyFile string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "moat test azurite"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost", HostStyleName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return nil, fmt.Errorf("write certificate key: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// Identity is a managed identity endpoint of the App Service kind
// (IDENTITY_ENDPOINT and IDENTITY_HEADER), standing in for Azure AD: it
// answers GET ?resource=…&api-version=2019-08-01 carrying the header
// X-IDENTITY-HEADER with a JWT of an Azure AD issuer for that resource, and
// records every request. It refuses a wrong header, API version or resource
// (anything but StorageResource). The token's signature is random bytes:
// nothing here can sign as Azure AD, and Azurite's basic mode does not check.
type Identity struct {
	// URL and Header are the values of IDENTITY_ENDPOINT and IDENTITY_HEADER.
	URL, Header string
	// Tenant is the tid of its tokens.
	Tenant string

	srv   *httptest.Server
	mu    sync.Mutex
	calls []IdentityCall
}

// IdentityCall is one request the Identity answered or refused.
type IdentityCall struct {
	Resource, ClientID string
	// Status is what it answered.
	Status int
}

// NewIdentity starts an Identity on loopback for one test.
func NewIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := newIdentity()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(id.srv.Close)
	return id
}

// ProcessIdentity returns the Identity this test process's own azidentity
// uses: it is started once and named in the process environment
// (IDENTITY_ENDPOINT, IDENTITY_HEADER), which is where azidentity looks.
// Its token cache is process-wide too, so a test that must see a call asks
// for an identity (client id) no other test used.
func ProcessIdentity(t testing.TB) *Identity {
	t.Helper()
	var err error
	identityOnce.Do(func() {
		var id *Identity
		if id, err = newIdentity(); err != nil {
			return
		}
		for k, v := range map[string]string{"IDENTITY_ENDPOINT": id.URL, "IDENTITY_HEADER": id.Header} {
			if err = os.Setenv(k, v); err != nil {
				return
			}
		}
		processIdentity = id
	})
	if processIdentity == nil {
		t.Fatalf("managed identity endpoint: %v", err)
	}
	return processIdentity
}

// Env is the environment that points a child process at the Identity.
func (id *Identity) Env() []string {
	return []string{"IDENTITY_ENDPOINT=" + id.URL, "IDENTITY_HEADER=" + id.Header}
}

// Calls returns the requests so far.
func (id *Identity) Calls() []IdentityCall {
	id.mu.Lock()
	defer id.mu.Unlock()
	return append([]IdentityCall(nil), id.calls...)
}

func newIdentity() (*Identity, error) {
	id := &Identity{Header: randomHex(16), Tenant: guid()}
	id.srv = httptest.NewServer(http.HandlerFunc(id.serve))
	id.URL = id.srv.URL + "/msi/token"
	return id, nil
}

func (id *Identity) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	call := IdentityCall{Resource: q.Get("resource"), ClientID: q.Get("client_id")}
	fail := func(status int, code, msg string) {
		call.Status = status
		id.record(call)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg}) // the status says it all
	}
	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/msi/token":
		fail(http.StatusNotFound, "not_found", "GET /msi/token only")
		return
	case r.Header.Get("X-IDENTITY-HEADER") != id.Header:
		fail(http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER missing or wrong")
		return
	case q.Get("api-version") != "2019-08-01":
		fail(http.StatusBadRequest, "invalid_request", "api-version must be 2019-08-01")
		return
	case call.Resource != StorageResource:
		fail(http.StatusBadRequest, "invalid_resource", "this endpoint issues tokens for "+StorageResource+" only")
		return
	}
	oid := call.ClientID // a user-assigned identity's object id, for the test's purposes
	if oid == "" {
		oid = "00000000-0000-4000-8000-00000000000a"
	}
	now := time.Now()
	exp := now.Add(time.Hour)
	tok, err := jwt(map[string]any{
		"aud": call.Resource, "iss": "https://sts.windows.net/" + id.Tenant + "/",
		"iat": now.Unix(), "nbf": now.Add(-5 * time.Minute).Unix(), "exp": exp.Unix(),
		"oid": oid, "tid": id.Tenant, "sub": oid, "appid": call.ClientID,
	})
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	call.Status = http.StatusOK
	id.record(call)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{ // a failed write is the client's to notice
		"access_token": tok, "expires_on": fmt.Sprint(exp.Unix()), "resource": call.Resource,
		"token_type": "Bearer", "client_id": call.ClientID,
	})
}

func (id *Identity) record(c IdentityCall) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.calls = append(id.calls, c)
}

// jwt encodes claims as a JWT with a random signature.
func jwt(claims map[string]any) (string, error) {
	b64 := base64.RawURLEncoding
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return b64.EncodeToString(hdr) + "." + b64.EncodeToString(body) + "." + b64.EncodeToString([]byte(randomHex(32))), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// guid returns a random GUID, lower-case, as Entra ids are written.
func guid() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// GUID returns a random GUID, e.g. a client id no other test used.
func GUID() string { return guid() }

// ManagedIdentityConfig returns a store configuration for a container of its
// own on the OAuth Azurite (path-style endpoint), authenticated by the
// process's managed identity (ProcessIdentity), system-assigned.
func ManagedIdentityConfig(t testing.TB) azblob.Config {
	t.Helper()
	s := OAuth(t)
	ProcessIdentity(t)
	return s.Config()
}

// Config returns a configuration for a fresh container on s (path-style
// endpoint) with the managed identity as credential, leaving the process
// environment alone: for a child process given an Identity's Env.
func (s *OAuthServer) Config() azblob.Config {
	return azblob.Config{
		Account:         Account,
		Container:       "m" + randomHex(8),
		Endpoint:        s.Endpoint(),
		ManagedIdentity: true,
		Transport:       s.Client(),
	}
}
