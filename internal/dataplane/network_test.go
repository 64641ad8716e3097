package dataplane

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/identity"
)

// setNetwork stores registry name's network properties as the management
// plane would and invalidates the handler's cache (its OnRegistryChange).
func (e *env) setNetwork(name, props string) {
	e.t.Helper()
	ctx := context.Background()
	reg, err := e.meta.GetRegistry(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	reg.Properties = []byte(props)
	if _, err := e.meta.UpdateRegistry(ctx, reg); err != nil {
		e.t.Fatal(err)
	}
	e.h.Invalidate(name)
}

// clientFrom returns an HTTP client whose connections leave from source
// (a 127.0.0.x address), standing for a client on another network.
func clientFrom(source string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func (e *env) getFrom(source, path string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(identity.AdminName, adminPassword)
	resp, err := clientFrom(source).Do(req)
	if err != nil {
		e.t.Fatalf("GET %s from %s: %v", path, source, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	msg := ""
	if len(body.Errors) > 0 {
		msg = body.Errors[0].Code + ": " + body.Errors[0].Message
	}
	return resp.StatusCode, msg
}

// TestNetworkRules_FirewallAndPublicAccess follows seed 003's two
// configurations from an allowed and a refused 127.0.0.x source, on every
// kind of data-plane route, and checks that a change applies on the next
// request.
func TestNetworkRules_FirewallAndPublicAccess(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "net")
	e.putManifest("app", "v1", img.manifest, "application/vnd.oci.image.manifest.v1+json").wantStatus(t, http.StatusCreated)
	paths := []string{"/v2/", "/v2/app/tags/list", "/v2/app/manifests/v1", "/v2/_catalog",
		"/oauth2/token?service=moat.localhost&scope=repository:app:pull"}

	// Open by default.
	for _, p := range paths {
		if code, msg := e.getFrom("127.0.0.3", p); code != http.StatusOK {
			t.Fatalf("open registry: GET %s = %d %s", p, code, msg)
		}
	}

	// defaultAction Deny with one rule: only 127.0.0.2 (and its /32 neighbours in the rule) get in.
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.2/32"}]}}`)
	for _, p := range paths {
		if code, msg := e.getFrom("127.0.0.2", p); code != http.StatusOK {
			t.Errorf("allowed source: GET %s = %d %s", p, code, msg)
		}
		code, msg := e.getFrom("127.0.0.3", p)
		if code != http.StatusForbidden || !strings.HasPrefix(msg, "DENIED: client with IP '127.0.0.3' is not allowed access") {
			t.Errorf("refused source: GET %s = %d %q, want 403 DENIED naming the IP", p, code, msg)
		}
	}
	// The other registry of the deployment keeps its own (open) rules.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v2/", nil)
	req.Host = testOther + "." + testDomain
	req.SetBasicAuth(identity.AdminName, adminPassword)
	resp, err := clientFrom("127.0.0.3").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("other registry from 127.0.0.3: %d, want 200", resp.StatusCode)
	}

	// publicNetworkAccess Disabled: nobody on the public endpoint, rules or not.
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.2"}]}}`)
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		if code, _ := e.getFrom(src, "/v2/app/manifests/v1"); code != http.StatusForbidden {
			t.Errorf("public access disabled: %s got %d, want 403", src, code)
		}
	}

	// Denials are logged with the step and reason.
	if logs := e.logs.String(); !strings.Contains(logs, `"network_reason":"publicNetworkAccess is Disabled`) {
		t.Errorf("denial not logged with its reason:\n%.2000s", logs)
	}

	// Back to Allow: the next request gets in.
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Allow","ipRules":[]}}`)
	if code, msg := e.getFrom("127.0.0.3", "/v2/app/manifests/v1"); code != http.StatusOK {
		t.Errorf("after reopening: %d %s", code, msg)
	}
}

// TestNetworkRules_UnreadableConfigurationFailsClosed: a stored registry
// whose network configuration does not compile is refused, not opened.
func TestNetworkRules_UnreadableConfigurationFailsClosed(t *testing.T) {
	e := newEnv(t)
	e.setNetwork(testDefault, `{"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"not-an-ip"}]}}`)
	if code, msg := e.getFrom("127.0.0.2", "/v2/"); code != http.StatusForbidden || !strings.HasPrefix(msg, "DENIED") {
		t.Fatalf("broken rules: %d %q, want 403 DENIED", code, msg)
	}
}
