package main

// The client commands' session: the profile `moat login` writes, the HTTP
// client that trusts the deployment's CA, the bearer token, and the plain
// ARM calls every command makes (JSON in, JSON out, so the output is the
// server's whole answer, as with az). Tokens come from azidentity, so login
// is what an Azure SDK client does against moat's issuer.
//
// Decisions:
//
//   - The profile (server, CA file, user or app id, tenant, subscription, and
//     the access token with its expiry) is $MOAT_CONFIG_DIR/profile.json, or
//     <user config dir>/moat/profile.json (~/.config/moat on Linux), mode 0600
//     in a 0700 directory. The password or client secret is never stored.
//   - When the token has expired, a command logs in again by itself if
//     MOAT_PASSWORD is set; otherwise it fails with AuthenticationExpired and
//     asks for `moat login`.
//   - With --ca-file, only that CA is trusted for the server; without it, the
//     system roots are.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/moat-registry/moat/internal/atomicfile"
)

const (
	configDirEnv          = "MOAT_CONFIG_DIR"
	passwordEnv           = "MOAT_PASSWORD"
	defaultSubscriptionID = "00000000-0000-0000-0000-000000000000"
	defaultTenant         = "organizations"
	// azCLIClientID is the public client id az uses for the password grant;
	// moat's issuer accepts it like Entra does.
	azCLIClientID   = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	managementScope = "https://management.core.windows.net//.default"
	// tokenSlack is how long before its expiry a token counts as expired, so
	// a command never starts with a token that dies on the way.
	tokenSlack = time.Minute
)

// profile is what `moat login` stores.
type profile struct {
	Server           string    `json:"server"`
	CAFile           string    `json:"caFile,omitempty"`
	Username         string    `json:"username"`
	ServicePrincipal bool      `json:"servicePrincipal,omitempty"`
	Tenant           string    `json:"tenant"`
	SubscriptionID   string    `json:"subscriptionId"`
	AccessToken      string    `json:"accessToken"`
	ExpiresOn        time.Time `json:"expiresOn"`
}

func profilePath() (string, error) {
	dir := os.Getenv(configDirEnv)
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("finding the profile directory (set %s): %w", configDirEnv, err)
		}
		dir = filepath.Join(base, "moat")
	}
	return filepath.Join(dir, "profile.json"), nil
}

func loadProfile() (profile, error) {
	path, err := profilePath()
	if err != nil {
		return profile{}, err
	}
	b, err := os.ReadFile(path) //nolint:gosec // G304: the user's own profile file
	if errors.Is(err, os.ErrNotExist) {
		return profile{}, failf("NotLoggedIn", "no profile at %s; run moat login first", path)
	}
	if err != nil {
		return profile{}, fmt.Errorf("reading the profile: %w", err)
	}
	var p profile
	if err := json.Unmarshal(b, &p); err != nil {
		return profile{}, failf("InvalidProfile", "%s: %v; run moat login again", path, err)
	}
	if p.Server == "" || p.SubscriptionID == "" {
		return profile{}, failf("InvalidProfile", "%s names no server or subscription; run moat login again", path)
	}
	return p, nil
}

func saveProfile(p profile) error {
	path, err := profilePath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the profile directory: %w", err)
	}
	// The token is meant to be stored: the file is 0600 in a 0700 directory.
	b, err := json.MarshalIndent(p, "", "  ") //nolint:gosec // G117: see above
	if err != nil {
		return fmt.Errorf("encoding the profile: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return nil
}

// newHTTPClient trusts only the CA in caFile when one is given.
func newHTTPClient(caFile string) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile) //nolint:gosec // G304: a file the user named
		if err != nil {
			return nil, failf("InvalidCAFile", "reading %s: %v", caFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, failf("InvalidCAFile", "%s holds no PEM certificate", caFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// clientOptions point the Azure SDK at the moat deployment: its issuer is
// the authority and its management API the resource manager.
func clientOptions(server string, hc *http.Client) azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: hc,
		Retry:     policy.RetryOptions{MaxRetries: 2},
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: server + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: server, Audience: "https://management.core.windows.net/"},
			},
		},
	}
}

// acquireToken gets a management token for p's identity with secret.
func acquireToken(ctx context.Context, p profile, secret string, hc *http.Client) (azcore.AccessToken, error) {
	opts := clientOptions(p.Server, hc)
	var cred azcore.TokenCredential
	var err error
	if p.ServicePrincipal {
		cred, err = azidentity.NewClientSecretCredential(p.Tenant, p.Username, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	} else {
		//nolint:staticcheck // deprecated in azidentity; moat's issuer serves this grant for its admin
		cred, err = azidentity.NewUsernamePasswordCredential(p.Tenant, azCLIClientID, p.Username, secret,
			&azidentity.UsernamePasswordCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	}
	if err != nil {
		return azcore.AccessToken{}, failf("InvalidArgument", "%v", oneLine(err.Error()))
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	if err != nil {
		return azcore.AccessToken{}, authError(err, p)
	}
	return tok, nil
}

// authError turns azidentity's multi-line error into one line that carries
// the issuer's error code and description.
func authError(err error, p profile) error {
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil && afe.RawResponse.Body != nil {
		b, rerr := io.ReadAll(io.LimitReader(afe.RawResponse.Body, 1<<16))
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if rerr == nil && json.Unmarshal(b, &body) == nil && body.Error != "" {
			// Entra's descriptions end in trace and correlation ids that
			// only matter to the issuer's operator.
			desc, _, _ := strings.Cut(body.Description, "Trace ID:")
			return failf("AuthenticationFailed", "%s: %s", body.Error, oneLine(desc))
		}
	}
	msg := oneLine(err.Error())
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return failf("AuthenticationFailed", "signing in to %s as %s: %s", p.Server, p.Username, msg)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// session is a logged-in client.
type session struct {
	prof profile
	http *http.Client
}

// openSession loads the profile and makes sure its token is valid, logging
// in again with MOAT_PASSWORD when it has expired.
func openSession(ctx context.Context) (*session, error) {
	p, err := loadProfile()
	if err != nil {
		return nil, err
	}
	hc, err := newHTTPClient(p.CAFile)
	if err != nil {
		return nil, err
	}
	if p.AccessToken == "" || time.Now().Add(tokenSlack).After(p.ExpiresOn) {
		secret := os.Getenv(passwordEnv)
		if secret == "" {
			return nil, failf("AuthenticationExpired", "the login to %s as %s has expired; run moat login again (or set %s)", p.Server, p.Username, passwordEnv)
		}
		tok, err := acquireToken(ctx, p, secret, hc)
		if err != nil {
			return nil, err
		}
		p.AccessToken, p.ExpiresOn = tok.Token, tok.ExpiresOn
		if err := saveProfile(p); err != nil {
			return nil, err
		}
	}
	return &session{prof: p, http: hc}, nil
}

// call sends one ARM request and decodes its JSON answer (nil when empty).
// A long-running operation (201/202 with Azure-AsyncOperation, or 202 with
// Location) is followed until it ends. Non-2xx answers become a cliError
// with the ARM code and message.
func (s *session) call(ctx context.Context, method, path, apiVersion string, body any) (any, error) {
	return s.callURL(ctx, method, s.armURL(path, apiVersion), body)
}

// armURL is the server's URL of an ARM path at an api-version.
func (s *session) armURL(path, apiVersion string) string {
	return s.prof.Server + (&url.URL{Path: path}).EscapedPath() + "?api-version=" + url.QueryEscape(apiVersion)
}

func (s *session) callURL(ctx context.Context, method, u string, body any) (any, error) {
	status, hdr, b, err := s.send(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if status >= 300 {
		return nil, armError(status, hdr.Get("x-ms-error-code"), b)
	}
	if op := hdr.Get("Azure-AsyncOperation"); op != "" && (status == http.StatusCreated || status == http.StatusAccepted) {
		if err := s.waitAsync(ctx, op); err != nil {
			return nil, err
		}
		if method == http.MethodDelete || method == http.MethodPost {
			return nil, nil
		}
		return s.callURL(ctx, http.MethodGet, u, nil)
	}
	if loc := hdr.Get("Location"); loc != "" && status == http.StatusAccepted {
		return s.poll(ctx, loc)
	}
	return decodeAnswer(method, b)
}

func decodeAnswer(method string, b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, failf("InvalidResponse", "the server's answer to %s is not JSON: %v", method, err)
	}
	return out, nil
}

// send makes one request and reads the whole answer.
func (s *session) send(ctx context.Context, method, u string, body any) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, failf("InvalidArgument", "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.prof.AccessToken)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, nil, failf("ConnectionFailed", "%s %s: %v", method, s.prof.Server, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, nil, failf("ConnectionFailed", "reading the answer to %s: %v", method, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// sameServer refuses to send the token to a polling URL on another host.
func (s *session) sameServer(u string) error {
	pu, err := url.Parse(u)
	if err != nil || !strings.EqualFold(pu.Scheme+"://"+pu.Host, s.prof.Server) {
		return failf("InvalidResponse", "the server named %q, which is not on %s", u, s.prof.Server)
	}
	return nil
}

// pollDelay is how long to wait before the next poll: the server's
// retry-after-ms or Retry-After, within [100ms, 5s].
func pollDelay(h http.Header) time.Duration {
	d := 500 * time.Millisecond
	if ms, err := strconv.Atoi(h.Get("retry-after-ms")); err == nil && ms > 0 {
		d = time.Duration(ms) * time.Millisecond
	} else if sec, err := strconv.Atoi(h.Get("Retry-After")); err == nil && sec > 0 {
		d = time.Duration(sec) * time.Second
	}
	return min(max(d, 100*time.Millisecond), 5*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxPolls bounds every wait for an operation (at most 5s apart).
const maxPolls = 2000

// waitAsync follows an Azure-AsyncOperation status document until its
// status is terminal; Failed and Canceled become the document's error.
func (s *session) waitAsync(ctx context.Context, op string) error {
	if err := s.sameServer(op); err != nil {
		return err
	}
	delay := 100 * time.Millisecond
	for range maxPolls {
		if err := sleepCtx(ctx, delay); err != nil {
			return err
		}
		status, hdr, b, err := s.send(ctx, http.MethodGet, op, nil)
		if err != nil {
			return err
		}
		if status >= 300 && status != http.StatusTooManyRequests && status < 500 {
			return armError(status, hdr.Get("x-ms-error-code"), b)
		}
		delay = pollDelay(hdr)
		if status >= 300 {
			continue // 429 and 5xx: keep polling, as the SDKs do
		}
		var doc struct {
			Status string          `json:"status"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return failf("InvalidResponse", "the operation status at %s is not JSON: %v", op, err)
		}
		switch {
		case strings.EqualFold(doc.Status, "Succeeded"):
			return nil
		case strings.EqualFold(doc.Status, "Failed"), strings.EqualFold(doc.Status, "Canceled"):
			return armError(http.StatusConflict, "", []byte(`{"error":`+orNull(doc.Error)+`}`))
		}
	}
	return failf("OperationTimedOut", "the operation at %s did not finish", op)
}

func orNull(b json.RawMessage) string {
	if len(b) == 0 {
		return "null"
	}
	return string(b)
}

// poll follows a Location header: 202 means running, any other 2xx done.
func (s *session) poll(ctx context.Context, loc string) (any, error) {
	if err := s.sameServer(loc); err != nil {
		return nil, err
	}
	delay := 100 * time.Millisecond
	for range maxPolls {
		if err := sleepCtx(ctx, delay); err != nil {
			return nil, err
		}
		status, hdr, b, err := s.send(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return nil, err
		}
		delay = pollDelay(hdr)
		switch {
		case status == http.StatusAccepted, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
			continue
		case status >= 300:
			return nil, armError(status, hdr.Get("x-ms-error-code"), b)
		}
		out, err := decodeAnswer(http.MethodGet, b)
		if err != nil {
			return nil, nil //nolint:nilerr // any 2xx ends a Location poll with success, body or not
		}
		return out, nil
	}
	return nil, failf("OperationTimedOut", "the operation at %s did not finish", loc)
}

type armErrorDetail struct {
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Details []armErrorDetail `json:"details"`
}

// armError reads an ARM error body; the code comes from x-ms-error-code
// first, as the SDKs read it.
func armError(status int, headerCode string, body []byte) error {
	var eb struct {
		Error armErrorDetail `json:"error"`
	}
	_ = json.Unmarshal(body, &eb) // a body that is no ARM error leaves the fields empty
	// A failed deployment's own code says only that; its first detail (the
	// failed resource's error) is what the user needs, as az shows it.
	for depth := 0; depth < 8 && strings.EqualFold(eb.Error.Code, "DeploymentFailed") && len(eb.Error.Details) > 0; depth++ {
		eb.Error = eb.Error.Details[0]
		headerCode = ""
	}
	code := headerCode
	if code == "" {
		code = eb.Error.Code
	}
	if code == "" {
		code = strings.ReplaceAll(http.StatusText(status), " ", "")
	}
	msg := oneLine(eb.Error.Message)
	if msg == "" {
		msg = fmt.Sprintf("the server answered %d %s", status, http.StatusText(status))
	}
	return &cliError{Code: code, Message: msg}
}

// list GETs an ARM collection and follows nextLink. An empty collection is
// an empty, non-nil list, so it prints as [] in JSON.
func (s *session) list(ctx context.Context, path, apiVersion string) ([]any, error) {
	return s.listURL(ctx, s.armURL(path, apiVersion))
}

// listURL is list for a URL that carries its own query (a $filter).
func (s *session) listURL(ctx context.Context, u string) ([]any, error) {
	page, err := s.callURL(ctx, http.MethodGet, u, nil)
	items := []any{}
	for range 10000 {
		if err != nil {
			return nil, err
		}
		m, _ := page.(map[string]any)
		v, _ := m["value"].([]any)
		items = append(items, v...)
		next, _ := m["nextLink"].(string)
		if next == "" {
			return items, nil
		}
		if err := s.sameServer(next); err != nil {
			return nil, err
		}
		page, err = s.callURL(ctx, http.MethodGet, next, nil)
	}
	return nil, failf("InvalidResponse", "the list at %s never ends", u)
}
