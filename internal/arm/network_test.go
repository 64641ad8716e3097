package arm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestAuditRecords(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("audited", "Premium")
	base := time.Now().Add(-time.Hour).UTC()
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if err := e.store.AddAuditRecord(context.Background(), meta.AuditRecord{
			Time: base.Add(time.Duration(i) * time.Minute), Registry: "audited", Endpoint: meta.EndpointPublic,
			ClientIP: ip, Allowed: i == 1, Step: "firewall-default-deny", Reason: "r", RuleSetVersion: "v", Method: "GET", Path: "/v2/",
		}); err != nil {
			t.Fatal(err)
		}
	}
	ips := func(r resp) []string {
		t.Helper()
		e.want(r, http.StatusOK, "", "")
		var out []string
		for _, v := range r.body["value"].([]any) {
			out = append(out, v.(map[string]any)["clientIp"].(string))
		}
		return out
	}
	path := regPath + "audited/auditRecords"
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: %q, want %q", what, got, want)
			}
		}
	}
	all := e.do("GET", path, newest, "")
	check("all", ips(all), "10.0.0.3", "10.0.0.2", "10.0.0.1")
	first := all.body["value"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "time", "registry", "endpoint", "step", "reason", "ruleSetVersion", "method", "path"} {
		if first[k] == nil || first[k] == "" {
			t.Fatalf("record %v lacks %s", first, k)
		}
	}
	check("denied", ips(e.do("GET", path+"?$filter=denied", newest, "")), "10.0.0.3", "10.0.0.1")
	check("since", ips(e.do("GET", path+"?since="+base.Add(90*time.Second).Format(time.RFC3339Nano), newest, "")), "10.0.0.3")
	check("top", ips(e.do("GET", path+"?$top=1", newest, "")), "10.0.0.3")
	check("case-insensitive route", ips(e.do("GET", regPath+"AUDITED/AUDITRECORDS", newest, "")), "10.0.0.3", "10.0.0.2", "10.0.0.1")

	e.want(e.do("GET", path+"?$filter=bogus", newest, ""), 400, "InvalidQueryParameterValue", "$filter")
	e.want(e.do("GET", path+"?since=yesterday", newest, ""), 400, "InvalidQueryParameterValue", "since")
	e.want(e.do("GET", path+"?$top=0", newest, ""), 400, "InvalidQueryParameterValue", "$top")
	e.want(e.do("GET", path, "", ""), 400, "MissingApiVersionParameter", "")
	e.want(e.do("POST", path, newest, ""), 405, "HttpMethodNotSupported", "")
	e.want(e.do("GET", regPath+"nope/auditRecords", newest, ""), 404, "ResourceNotFound", "nope")
	e.want(e.do("GET", "/subscriptions/"+sub+"/resourceGroups/other/providers/Microsoft.ContainerRegistry/registries/audited/auditRecords", newest, ""),
		404, "ResourceNotFound", "")

	// Unauthenticated callers see nothing.
	req, _ := http.NewRequest("GET", path+"?api-version="+newest, nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", rec.Code)
	}
}

func TestCheckNetworkAccess(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("fwreg", "Premium")
	e.want(e.do("PATCH", regPath+"fwreg", newest,
		`{"properties":{"networkRuleBypassOptions":"AzureServices","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.2"},{"action":"Allow","value":"10.1.0.0/16"}]}}}`),
		200, "", "")
	path := regPath + "fwreg/checkNetworkAccess"
	version := regexp.MustCompile(`^[0-9a-f]{16}$`)
	cases := []struct {
		name, body string
		allowed    bool
		step, rule string
	}{
		{"rule", `{"clientIp":"127.0.0.2"}`, true, "firewall-ip-rule", "127.0.0.2"},
		{"cidr rule", `{"clientIp":"10.1.2.3"}`, true, "firewall-ip-rule", "10.1.0.0/16"},
		{"mapped IPv6", `{"clientIp":"::ffff:127.0.0.2"}`, true, "firewall-ip-rule", "127.0.0.2"},
		{"refused", `{"clientIp":"127.0.0.3"}`, false, "firewall-default-deny", ""},
		{"IPv6 refused", `{"clientIp":"2001:db8::1"}`, false, "firewall-default-deny", ""},
		{"trusted service", `{"clientIp":"127.0.0.3","trustedService":"ContainerInstances"}`, true, "trusted-service", ""},
		{"trusted service spelled with a space", `{"clientIp":"127.0.0.3","trustedService":"container instances"}`, true, "trusted-service", ""},
		{"app service never", `{"clientIp":"127.0.0.3","trustedService":"AppService"}`, false, "firewall-default-deny", ""},
		{"unknown private endpoint", `{"clientIp":"127.0.0.2","privateEndpoint":"pe1"}`, false, "private-endpoint", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", path, newest, c.body)
			e.want(r, 200, "", "")
			if r.body["allowed"] != c.allowed || r.body["step"] != c.step || (r.body["rule"] != nil || c.rule != "") && r.body["rule"] != c.rule {
				t.Fatalf("answer %s, want allowed %v step %s rule %q", r.raw, c.allowed, c.step, c.rule)
			}
			if v, _ := r.body["ruleSetVersion"].(string); !version.MatchString(v) {
				t.Fatalf("ruleSetVersion %q", v)
			}
			if reason, _ := r.body["reason"].(string); reason == "" {
				t.Fatalf("no reason in %s", r.raw)
			}
		})
	}

	// A change of the rules changes the answer and the version.
	before := e.do("POST", path, newest, `{"clientIp":"127.0.0.3"}`).body["ruleSetVersion"]
	e.want(e.do("PATCH", regPath+"fwreg", newest, `{"properties":{"publicNetworkAccess":"Disabled"}}`), 200, "", "")
	after := e.do("POST", path, newest, `{"clientIp":"127.0.0.2"}`)
	if after.body["allowed"] != false || after.body["step"] != "public-network-access" || after.body["ruleSetVersion"] == before {
		t.Fatalf("after disabling public access: %s (version before %v)", after.raw, before)
	}

	e.want(e.do("POST", path, newest, `{"clientIp":"127.0.0.999"}`), 400, "InvalidRequestContent", "127.0.0.999")
	e.want(e.do("POST", path, newest, `{}`), 400, "InvalidRequestContent", "clientIp")
	e.want(e.do("POST", path, newest, `not json`), 400, "InvalidRequestContent", "")
	e.want(e.do("POST", path, newest, `{"clientIp":"127.0.0.2","trustedService":"Kubernetes"}`), 400, "InvalidRequestContent", "Kubernetes")
	e.want(e.do("GET", path, newest, ""), 405, "HttpMethodNotSupported", "")
	e.want(e.do("POST", regPath+"nope/checkNetworkAccess", newest, `{"clientIp":"127.0.0.2"}`), 404, "ResourceNotFound", "")
}

func TestParseNetworkExtension(t *testing.T) {
	for path, want := range map[string]string{
		regPath + "r/auditRecords":        extAuditRecords,
		regPath + "r/checkNetworkAccess":  extCheckAccess,
		regPath + "r/checknetworkaccess/": extCheckAccess,
		regPath + "r":                     "",
		regPath + "r/listUsages":          "",
		regPath + "r/auditRecords/x":      "",
		"/subscriptions/s/resourceGroups/g/providers/Other.NS/registries/r/auditRecords":                   "",
		"/subscriptions/s/resourceGroups//providers/Microsoft.ContainerRegistry/registries/r/auditRecords": "",
	} {
		if _, got := parseNetworkExtension(path); got != want {
			t.Errorf("parseNetworkExtension(%q) = %q, want %q", path, got, want)
		}
	}
}
