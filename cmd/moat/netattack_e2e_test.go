package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/identity"
)

// answer is the status and first OCI error of one data-plane request.
type answer struct {
	status int
	code   string
	msg    string
	body   string
}

// probe sends one request to moat: connecting to dial (moat's listener or a
// private endpoint's), from source ("" for any), for url, with mod applied
// (Host header, credentials, forged headers).
func (d *trustedDeployment) probe(t *testing.T, dial, source, method, rawURL string, mod func(*http.Request)) answer {
	t.Helper()
	tr := transportFrom(t, d.hc, dial, source)
	if source == "" {
		tr = clientTrusting(t, d.ca, dial).Transport
	}
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", d.password)
	if mod != nil {
		mod(req)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", method, rawURL, source, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	_ = json.Unmarshal(b, &eb)
	a := answer{status: resp.StatusCode, body: string(b)}
	if len(eb.Errors) > 0 {
		a.code, a.msg = eb.Errors[0].Code, eb.Errors[0].Message
	}
	return a
}

// wantDeniedFor fails unless a is 403 DENIED naming ip as the client (any
// client when ip is "").
func wantDeniedFor(t *testing.T, what string, a answer, ip string) {
	t.Helper()
	if a.status != http.StatusForbidden || a.code != "DENIED" || !strings.Contains(a.msg, "client with IP '"+ip) {
		t.Errorf("%s: %d %s %q, want 403 DENIED naming %s", what, a.status, a.code, a.msg, ip)
	}
}

func wantStatus(t *testing.T, what string, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Errorf("%s: %d %s %q, want %d", what, a.status, a.code, a.msg, status)
	}
}

// jwtParts splits a JWT into its decoded header and claims.
func jwtParts(t *testing.T, raw string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, claims
}

// forgeJWT signs hdr and claims with key (nil: alg none, no signature), or
// keeps sig when given (a genuine signature over other claims).
func forgeJWT(t *testing.T, hdr, claims map[string]any, key *ecdsa.PrivateKey, sig string) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	switch {
	case sig != "":
		return signing + "." + sig
	case key == nil:
		return signing + "."
	}
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(out)
}

// msiToken asks an instance's identity endpoint for an Entra token for ACR,
// as a workload would without azidentity.
func (d *trustedDeployment) msiToken(t *testing.T, endpoint, header string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, endpoint+"?api-version=2019-08-01&resource="+url.QueryEscape("https://containerregistry.azure.net"), nil)
	req.Header.Set("X-IDENTITY-HEADER", header)
	resp, err := d.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("identity endpoint: %d %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// TestNetworkAttacksEndToEnd runs issue 5's attack list against a real
// `moat serve` (trusting one proxy, 127.0.0.9, for X-Forwarded-For) and a
// second replica listening on ::1, configured only through the management
// API: forged client-address headers, Host headers naming other
// registries, tokens and requests crossing private endpoints, Pending and
// Rejected endpoints, App Service and forged tokens claiming a trusted
// service, IPv6 and IPv4-mapped addresses, overlapping and all-covering
// rules. Seed 003's two configurations are judged from an allowed and a
// refused 127.0.0.x source in the firewall part.
func TestNetworkAttacksEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const sub = defaultSubscriptionID
	const proxy, allowed, refused = "127.0.0.9", "127.0.0.2", "127.0.0.3"
	d := startTrustedDeployment(t, "attack-secret-1", "--trusted-proxies", proxy+"/32")
	cliOK(t, d.cfg, "group", "create", "-n", "pe")
	fwID := cliJSON(t, cliOK(t, d.cfg, "acr", "create", "-n", "fwareg1", "-g", "pe", "--sku", "Premium"))["id"].(string)
	const api = "?api-version=2025-04-01"
	setRules := func(props string) {
		t.Helper()
		d.arm(t, http.MethodPatch, fwID+api, `{"properties":`+props+`}`, http.StatusOK, http.StatusAccepted)
	}
	// Seed 003, first form: defaultAction Deny with one IP rule.
	setRules(`{"publicNetworkAccess":"Enabled","networkRuleBypassOptions":"AzureServices","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"` + allowed + `"}]}}`)

	fwHost := "fwareg1.localhost:" + d.port
	ref, err := name.ParseReference(fwHost + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	admin := remote.WithAuth(&authn.Basic{Username: "admin", Password: d.password})
	if err := remote.Write(ref, img, admin, remote.WithTransport(transportFrom(t, d.hc, d.addr, allowed))); err != nil {
		t.Fatalf("push from the allowed %s: %v", allowed, err)
	}
	manifestURL := "https://" + fwHost + "/v2/app/manifests/v1"
	from := func(source string, mod func(*http.Request)) answer {
		t.Helper()
		return d.probe(t, d.addr, source, http.MethodGet, manifestURL, mod)
	}
	wantStatus(t, "seed 003 (Deny + rule): allowed source", from(allowed, nil), http.StatusOK)
	wantDeniedFor(t, "seed 003 (Deny + rule): refused source", from(refused, nil), refused)

	// Forged client-address headers from a peer that is not a trusted proxy.
	for _, h := range [][2]string{
		{"X-Forwarded-For", allowed},
		{"X-Forwarded-For", allowed + ", " + proxy},
		{"X-Forwarded-For", "::ffff:" + allowed},
		{"Forwarded", "for=" + allowed},
		{"Forwarded", `for="[::ffff:` + allowed + `]";proto=https`},
		{"X-Real-IP", allowed},
		{"True-Client-IP", allowed},
		{"X-Client-IP", allowed},
	} {
		wantDeniedFor(t, "from "+refused+" with "+h[0]+": "+h[1], from(refused, func(r *http.Request) { r.Header.Set(h[0], h[1]) }), refused)
	}
	// From the trusted proxy the header counts, read right to left; IPv4-mapped
	// forms are the IPv4 address; anything malformed is the proxy itself.
	xff := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("X-Forwarded-For", v) }
	}
	wantStatus(t, "proxy forwarding the allowed client", from(proxy, xff(allowed)), http.StatusOK)
	wantStatus(t, "proxy forwarding the allowed client, IPv4-mapped", from(proxy, xff("::ffff:"+allowed)), http.StatusOK)
	wantDeniedFor(t, "proxy forwarding a refused client", from(proxy, xff(refused)), refused)
	wantDeniedFor(t, "proxy forwarding a refused client, IPv4-mapped", from(proxy, xff("::ffff:"+refused)), refused)
	wantDeniedFor(t, "client-forged left part, proxy-appended right part", from(proxy, xff(allowed+", "+refused)), refused)
	wantDeniedFor(t, "malformed entry from the proxy", from(proxy, xff("not-an-address")), proxy)
	wantDeniedFor(t, "the proxy without a header", from(proxy, nil), proxy)
	wantDeniedFor(t, "Forwarded (not read) from the proxy", from(proxy, func(r *http.Request) { r.Header.Set("Forwarded", "for="+allowed) }), proxy)

	// Host headers naming the same registry otherwise, or another one: the
	// restricted registry's content never comes out to a refused client.
	for _, h := range []string{"FWAREG1.LOCALHOST:" + d.port, "fwareg1.localhost.", "fwareg1.localhost:1"} {
		wantDeniedFor(t, "Host "+h, from(refused, func(r *http.Request) { r.Host = h }), refused)
	}
	for _, h := range []string{"moat.localhost", "x.fwareg1.localhost", "127.0.0.1", "fwareg1.localhost.evil", "fwareg1", "[::1]"} {
		a := from(refused, func(r *http.Request) { r.Host = h })
		if a.status == http.StatusOK {
			t.Errorf("Host %q from %s served fwa's manifest: %s", h, refused, a.body)
		}
	}

	// Overlapping and all-covering rules; IPv6 on a second replica on ::1.
	// Without IPv6 loopback only the IPv6 expectations are left out.
	var from6 func() answer
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback, IPv6 cases skipped: %v", err)
	} else {
		_ = ln.Close()
		p6, url6 := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=attack-secret-1"}, "serve", "--listen", "[::1]:0", "--data-dir", d.dataDir)
		t.Cleanup(func() { p6.stop(t) })
		addr6 := strings.TrimPrefix(url6, "https://")
		from6 = func() answer {
			t.Helper()
			return d.probe(t, addr6, "", http.MethodGet, manifestURL, nil)
		}
		eventually(t, "the ::1 replica refuses ::1 under the IPv4 rule", func() error {
			if a := from6(); a.status != http.StatusForbidden || !strings.Contains(a.msg, "client with IP '::1'") {
				return fmt.Errorf("%d %s", a.status, a.msg)
			}
			return nil
		})
	}
	type expect struct {
		source string
		ok     bool
	}
	for _, c := range []struct {
		rules string
		want  []expect
	}{
		{`"127.0.0.0/8","127.0.0.2","127.0.0.0/30","10.0.0.0/8"`, []expect{{allowed, true}, {refused, true}, {"127.0.0.200", true}, {"::1", false}}},
		{`"127.0.0.2","127.0.0.2/32","127.0.0.0/31"`, []expect{{allowed, true}, {refused, false}, {"127.0.0.1", true}, {"::1", false}}},
		{`"0.0.0.0/0"`, []expect{{allowed, true}, {refused, true}, {"::1", false}}},
		{`"::1"`, []expect{{allowed, false}, {refused, false}, {"::1", true}}},
		{`"::/0"`, []expect{{allowed, true}, {refused, true}, {"::1", true}}},
		{`"::ffff:127.0.0.0/126"`, []expect{{allowed, true}, {refused, true}, {"127.0.0.4", false}, {"::1", false}}},
	} {
		var rules []string
		for _, v := range strings.Split(c.rules, ",") {
			rules = append(rules, `{"action":"Allow","value":`+v+`}`)
		}
		setRules(`{"networkRuleSet":{"defaultAction":"Deny","ipRules":[` + strings.Join(rules, ",") + `]}}`)
		for _, w := range c.want {
			if w.source == "::1" && from6 == nil {
				continue
			}
			check := func() error {
				var a answer
				if w.source == "::1" {
					a = from6()
				} else {
					a = from(w.source, nil)
				}
				if w.ok && a.status != http.StatusOK || !w.ok && (a.status != http.StatusForbidden || !strings.Contains(a.msg, "'"+w.source+"'")) {
					return fmt.Errorf("rules [%s] from %s: %d %s %q, want allowed=%v", c.rules, w.source, a.status, a.code, a.msg, w.ok)
				}
				return nil
			}
			if w.source == "::1" {
				eventually(t, "the ::1 replica follows", check) // it learns the change from the feed
			} else if err := check(); err != nil {
				t.Error(err)
			}
		}
	}
	// Seed 003, second form: publicNetworkAccess Disabled refuses the allowed source too.
	setRules(`{"publicNetworkAccess":"Disabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"` + allowed + `"}]}}`)
	wantDeniedFor(t, "seed 003 (public access Disabled): the rule's source", from(allowed, nil), allowed)
	wantDeniedFor(t, "seed 003 (public access Disabled): refused source", from(refused, nil), refused)

	// App Service and forged tokens claiming a trusted service.
	group := "/subscriptions/" + sub + "/resourceGroups/pe/providers"
	aciID := group + "/Microsoft.ContainerInstance/containerGroups/puller"
	siteEndpoint, siteHeader := d.instance(t, group+"/Microsoft.Web/sites/webapp",
		`{"location":"local","identity":{"type":"SystemAssigned"},"properties":{}}`, "AcrPull", fwID)
	aciEndpoint, aciHeader := d.instance(t, aciID,
		`{"location":"local","identity":{"type":"SystemAssigned"},"properties":{"osType":"Linux","containers":[]}}`, "AcrPull", fwID)
	exchange := func(entra string) answer {
		return d.probe(t, d.addr, refused, http.MethodPost, "https://"+fwHost+"/oauth2/exchange", func(r *http.Request) {
			r.Header.Del("Authorization")
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			body := url.Values{"grant_type": {"access_token"}, "service": {"fwareg1.localhost"}, "access_token": {entra}}.Encode()
			r.Body = io.NopCloser(strings.NewReader(body))
			r.ContentLength = int64(len(body))
		})
	}
	siteTok := d.msiToken(t, siteEndpoint, siteHeader)
	wantDeniedFor(t, "genuine App Service token at the exchange", exchange(siteTok), refused)
	if a := exchange(d.msiToken(t, aciEndpoint, aciHeader)); a.status != http.StatusOK {
		t.Fatalf("genuine container group token at the exchange: %d %s", a.status, a.body)
	}
	hdr, claims := jwtParts(t, siteTok)
	claims["xms_mirid"], claims["xms_az_rid"] = aciID, aciID
	sig := siteTok[strings.LastIndex(siteTok, ".")+1:]
	wantDeniedFor(t, "App Service token re-labelled as a container group", exchange(forgeJWT(t, hdr, claims, nil, sig)), refused)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wantDeniedFor(t, "self-signed token naming a container group", exchange(forgeJWT(t, hdr, claims, key, "")), refused)
	none := map[string]any{"alg": "none", "typ": "JWT"}
	wantDeniedFor(t, "unsigned token naming a container group", exchange(forgeJWT(t, none, claims, nil, "")), refused)
	// The same forgeries as data-plane access tokens.
	access := map[string]any{"iss": claims["iss"], "aud": "fwareg1.localhost", "sub": claims["oid"], "kind": identity.KindManagedIdentity,
		"xms_mirid": aciID, "exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Add(-time.Minute).Unix(), "iat": time.Now().Unix(),
		"access": []map[string]any{{"type": "repository", "name": "app", "actions": []string{"pull"}}}}
	for label, tok := range map[string]string{
		"self-signed access token": forgeJWT(t, hdr, access, key, ""),
		"unsigned access token":    forgeJWT(t, none, access, nil, ""),
		"Entra token as bearer":    siteTok,
	} {
		wantDeniedFor(t, label, from(refused, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }), refused)
	}

	// Private endpoints: registries peb and pea, public access disabled,
	// one endpoint each; a manual (Pending) one for peb.
	cliOK(t, d.cfg, "acr", "create", "-n", "pebreg1", "-g", "pe", "--sku", "Premium", "--public-network-enabled", "false")
	cliOK(t, d.cfg, "acr", "create", "-n", "peareg1", "-g", "pe", "--sku", "Premium", "--public-network-enabled", "false")
	mgmt := &peClient{t: t, url: d.url, token: d.token, http: d.hc}
	mgmt.putEndpoint("pe-b", "pebreg1", "127.0.0.80", false)
	mgmt.putEndpoint("pe-a", "peareg1", "127.0.0.81", false)
	mgmt.putEndpoint("pe-b-manual", "pebreg1", "127.0.0.82", true)
	peB, peA, pePending := "127.0.0.80:"+d.port, "127.0.0.81:"+d.port, "127.0.0.82:"+d.port
	pebRef, _ := name.ParseReference("pebreg1.localhost:" + d.port + "/app:v1")
	if err := remote.Write(pebRef, img, admin, remote.WithTransport(clientTrusting(t, d.ca, peB).Transport)); err != nil {
		t.Fatalf("push through peb's endpoint: %v", err)
	}
	pebManifest := "https://pebreg1.localhost:" + d.port + "/v2/app/manifests/v1"
	wantStatus(t, "peb through its endpoint", d.probe(t, peB, "", http.MethodGet, pebManifest, nil), http.StatusOK)
	// A request for peb arriving on pea's endpoint; fwa or pea on peb's.
	if a := d.probe(t, peA, "", http.MethodGet, pebManifest, nil); a.status != http.StatusNotFound || a.code != "NAME_UNKNOWN" {
		t.Errorf("peb through pea's endpoint: %d %s %q, want 404 NAME_UNKNOWN", a.status, a.code, a.msg)
	}
	if a := d.probe(t, peB, "", http.MethodGet, manifestURL, nil); a.status != http.StatusNotFound || a.code != "NAME_UNKNOWN" {
		t.Errorf("fwa through peb's endpoint: %d %s %q, want 404 NAME_UNKNOWN", a.status, a.code, a.msg)
	}
	// A token of fwa presented on peb's endpoint (for peb): not peb's.
	setRules(`{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"` + allowed + `"}]}}`)
	tokA := d.probe(t, d.addr, allowed, http.MethodGet, "https://"+fwHost+"/oauth2/token?service=fwareg1.localhost&scope=repository:app:pull", nil)
	var tokBody struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(tokA.body), &tokBody); err != nil || tokBody.Token == "" {
		t.Fatalf("fwa token: %d %s", tokA.status, tokA.body)
	}
	withTokA := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tokBody.Token) }
	wantStatus(t, "fwa's token on fwa", from(allowed, withTokA), http.StatusOK)
	if a := d.probe(t, peB, "", http.MethodGet, pebManifest, withTokA); a.status != http.StatusUnauthorized {
		t.Errorf("fwa's token on peb's endpoint: %d %s %q, want 401", a.status, a.code, a.msg)
	}
	if a := d.probe(t, peB, "", http.MethodGet, pebManifest, func(r *http.Request) {
		withTokA(r)
		r.Host = "fwareg1.localhost"
	}); a.status != http.StatusNotFound || a.code != "NAME_UNKNOWN" {
		t.Errorf("fwa's token for fwa on peb's endpoint: %d %s %q, want 404 NAME_UNKNOWN", a.status, a.code, a.msg)
	}

	// Pending: refused to everyone, a trusted service's refresh token and
	// bare requests included (the bypass and its challenge are for the
	// public endpoint only); approved: served.
	cliOK(t, d.cfg, "role", "assignment", "create", "--assignee", principalOf(t, d, aciID), "--role", "AcrPull", "--scope", strings.TrimSuffix(fwID, "fwareg1")+"pebreg1")
	rt := d.refreshTokenFor(t, "pebreg1", refused, aciEndpoint, aciHeader)
	mi := remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: rt}))
	if _, err := remote.Head(pebRef, mi, remote.WithTransport(transportFrom(t, d.hc, d.addr, refused))); err != nil {
		t.Fatalf("the container group through the bypass on peb's public endpoint: %v", err)
	}
	for label, opt := range map[string]remote.Option{"admin": admin, "trusted service": mi, "anonymous": remote.WithAuth(authn.Anonymous)} {
		if _, err := remote.Head(pebRef, opt, remote.WithTransport(clientTrusting(t, d.ca, pePending).Transport)); err == nil || !strings.Contains(err.Error(), "DENIED") {
			t.Errorf("%s through the Pending endpoint: %v, want DENIED", label, err)
		}
	}
	wantDeniedFor(t, "bare request on the Pending endpoint", d.probe(t, pePending, "", http.MethodGet, "https://pebreg1.localhost:"+d.port+"/v2/", func(r *http.Request) { r.Header.Del("Authorization") }), "")
	// Rejected: refused at once, the trusted service included.
	var conn string
	for _, c := range cliDecode(t, cliOK(t, d.cfg, "acr", "private-endpoint-connection", "list", "-r", "pebreg1", "-g", "pe")).([]any) {
		if id, _ := cliDig(c, "properties.privateEndpoint.id").(string); strings.HasSuffix(id, "/pe-b") {
			conn, _ = c.(map[string]any)["name"].(string)
		}
	}
	cliOK(t, d.cfg, "acr", "private-endpoint-connection", "reject", "-r", "pebreg1", "-g", "pe", "-n", conn)
	for label, opt := range map[string]remote.Option{"admin": admin, "trusted service": mi} {
		if _, err := remote.Head(pebRef, opt, remote.WithTransport(clientTrusting(t, d.ca, peB).Transport)); err == nil || !strings.Contains(err.Error(), "DENIED") {
			t.Errorf("%s through the Rejected endpoint: %v, want DENIED", label, err)
		}
	}
}

// principalOf returns the principal id of instance's system-assigned
// identity, read back through the management API.
func principalOf(t *testing.T, d *trustedDeployment, instance string) string {
	t.Helper()
	out := d.arm(t, http.MethodGet, instance+"?api-version=2023-05-01", "", http.StatusOK)
	p, _ := cliDig(out, "identity.principalId").(string)
	if p == "" {
		t.Fatalf("%s has no principal: %v", instance, out)
	}
	return p
}
