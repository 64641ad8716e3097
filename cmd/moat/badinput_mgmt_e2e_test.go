package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestManagementBadInputEndToEnd sends issue 4's list of bad management
// requests to a real `moat serve` over TLS with a token from its issuer:
// each is a 4xx ARM error ({"error":{"code","message"}}, x-ms-error-code)
// whose message names the parameter or field, and none leaves anything
// behind: a refused PATCH, even one that also carries a valid change,
// leaves the stored registry byte for byte as it was, and a refused create
// creates nothing.
func TestManagementBadInputEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	m := startManagedMoat(t, "bad-input-secret-1")
	m.putGroup(t, "bad")
	const api = "?api-version=2023-07-01"
	sub := "/subscriptions/" + defaultSubscriptionID
	regs := sub + "/resourceGroups/bad/providers/Microsoft.ContainerRegistry/registries/"
	call := func(method, path, body string) (int, string, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, m.url+path, rd)
		req.Header.Set("Authorization", "Bearer "+m.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := m.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("x-ms-error-code"), string(b)
	}
	if code, _, body := call(http.MethodPut, regs+"badreg01"+api, `{"location":"local","sku":{"name":"Premium"}}`); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	ipRules := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"action":"Allow","value":"10.3.%d.%d"}`, i/256, i%256)
		}
		return "[" + b.String() + "]"
	}

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
		mentions                 []string
	}{
		{"missing api-version", "GET", regs + "badreg01", "", 400, "MissingApiVersionParameter", []string{"api-version"}},
		{"empty api-version", "PATCH", regs + "badreg01?api-version=", `{"properties":{"adminUserEnabled":true}}`, 400, "MissingApiVersionParameter", []string{"api-version"}},
		{"unknown api-version", "PATCH", regs + "badreg01?api-version=2018-01-01", `{"properties":{"adminUserEnabled":true}}`, 400, "InvalidApiVersionParameter", []string{"2018-01-01"}},
		{"unknown child type", "PUT", regs + "badreg01/webhooks/hook1" + api, `{"location":"local"}`, 400, "InvalidResourceType", []string{"webhooks"}},
		{"unknown provider", "PUT", sub + "/resourceGroups/bad/providers/Microsoft.Storage/storageAccounts/st1" + api, `{"location":"local"}`, 400, "InvalidResourceType", []string{"storageAccounts"}},
		{"malformed JSON", "PATCH", regs + "badreg01" + api, `{"properties":{"adminUserEnabled":true,}}`, 400, "InvalidRequestContent", []string{"malformed JSON", "offset"}},
		{"truncated JSON", "PATCH", regs + "badreg01" + api, `{"properties":`, 400, "InvalidRequestContent", []string{"JSON"}},
		{"not an object", "PATCH", regs + "badreg01" + api, `[1,2]`, 400, "InvalidRequestContent", nil},
		{"boolean as string", "PATCH", regs + "badreg01" + api, `{"properties":{"adminUserEnabled":"yes"}}`, 400, "InvalidRequestContent", []string{"properties.adminUserEnabled", `"yes"`}},
		{"unknown enum", "PATCH", regs + "badreg01" + api, `{"properties":{"publicNetworkAccess":"Sometimes"}}`, 400, "InvalidRequestContent", []string{"publicNetworkAccess", "Sometimes"}},
		{"rules not a list", "PATCH", regs + "badreg01" + api, `{"properties":{"networkRuleSet":{"ipRules":"10.0.0.1"}}}`, 400, "InvalidRequestContent", []string{"ipRules"}},
		{"days as string", "PATCH", regs + "badreg01" + api, `{"properties":{"policies":{"retentionPolicy":{"days":"seven"}}}}`, 400, "InvalidRequestContent", []string{"retentionPolicy.days"}},
		{"valid change with a /33 rule", "PATCH", regs + "badreg01" + api,
			`{"properties":{"adminUserEnabled":true,"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"10.0.0.0/33"}]}}}`,
			400, "InvalidIpRule", []string{"properties.networkRuleSet.ipRules[0].value", "10.0.0.0/33"}},
		{"valid change with 201 rules", "PATCH", regs + "badreg01" + api,
			`{"tags":{"t":"x"},"properties":{"networkRuleSet":{"ipRules":` + ipRules(201) + `}}}`,
			400, "IpRuleQuotaExceeded", []string{"properties.networkRuleSet.ipRules", "quota of 200"}},
		{"full PUT with a wrong type", "PUT", regs + "badreg01" + api, `{"location":"local","sku":{"name":"Premium"},"properties":{"anonymousPullEnabled":1}}`,
			400, "InvalidRequestContent", []string{"anonymousPullEnabled"}},
	}
	_, _, before := call(http.MethodGet, regs+"badreg01"+api, "")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, header, body := call(c.method, c.path, c.body)
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || status != c.status || e.Error.Code != c.code || header != c.code {
				t.Fatalf("%d %q %s, want %d %s in ARM's error shape", status, header, body, c.status, c.code)
			}
			for _, s := range c.mentions {
				if !strings.Contains(e.Error.Message, s) {
					t.Fatalf("message %q does not name %q", e.Error.Message, s)
				}
			}
			if _, _, after := call(http.MethodGet, regs+"badreg01"+api, ""); after != before {
				t.Fatalf("a refused request changed the registry:\n%s\n%s", before, after)
			}
		})
	}

	// A refused create leaves no registry and the name free.
	for _, body := range []string{
		`{"location":"local","sku":{"name":"Premium"},"properties":{"adminUserEnabled":"yes"}}`,
		`{"location":"local","sku":{"name":"Premium"},"properties":{"networkRuleSet":{"ipRules":[{"value":"10.0.0.0/33"}]}}}`,
		`{"location":"local","sku":{"name":"Premium"},"properties":{"networkRuleSet":{"ipRules":` + ipRules(201) + `}}}`,
		`{"location":"local","sku":{"name":"Premium"}`,
	} {
		if status, _, out := call(http.MethodPut, regs+"badnew01"+api, body); status != http.StatusBadRequest {
			t.Fatalf("create with %.60s: %d %s", body, status, out)
		}
		if status, code, _ := call(http.MethodGet, regs+"badnew01"+api, ""); status != http.StatusNotFound || code != "ResourceNotFound" {
			t.Fatalf("a refused create left a registry: %d %s", status, code)
		}
	}
	// The resource group API checks its own versions.
	if status, code, _ := call(http.MethodPut, sub+"/resourcegroups/bad2?api-version=2023-07-01-nope", `{"location":"local"}`); status != 400 || code != "InvalidApiVersionParameter" {
		t.Fatalf("group with a bad api-version: %d %s", status, code)
	}
	if status, code, _ := call(http.MethodGet, sub+"/resourcegroups/bad2?api-version=2021-04-01", ""); status != 404 || code != "ResourceGroupNotFound" {
		t.Fatalf("a refused group PUT left a group: %d %s", status, code)
	}
}
