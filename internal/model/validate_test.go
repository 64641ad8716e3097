package model

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func premium() Registry {
	r := Defaults()
	r.Location, r.SKU = "westeurope", SKUPremium
	return r
}

func with(r Registry, f func(*Registry)) Registry {
	r = r.Clone()
	f(&r)
	return r
}

func rules(n int) []IPRule {
	out := make([]IPRule, n)
	for i := range out {
		out[i] = IPRule{Action: ActionAllow, Value: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}
	}
	return out
}

func TestValidate(t *testing.T) {
	exportOff := with(premium(), func(r *Registry) {
		r.Properties.PublicNetworkAccess = Disabled
		r.Properties.Policies.ExportPolicy.Status = StatusDisabled
	})
	cases := []struct {
		name    string
		old     *Registry
		next    Registry
		vc      ValidationContext
		code    string
		status  int
		message string // substring
	}{
		{name: "defaults on Basic are fine", next: with(premium(), func(r *Registry) { r.SKU = SKUBasic })},
		{name: "location required", next: with(premium(), func(r *Registry) { r.Location = "" }), code: CodeLocationRequired, status: 400},
		{name: "sku required", next: with(premium(), func(r *Registry) { r.SKU = "" }), code: CodeSKURequired, status: 400},
		{name: "public access disabled on Basic", next: with(premium(), func(r *Registry) { r.SKU = SKUBasic; r.Properties.PublicNetworkAccess = Disabled }),
			code: CodeDisablingPublicNetworkAccessNotSupported, status: 400, message: "Basic"},
		{name: "public access disabled on Standard", next: with(premium(), func(r *Registry) { r.SKU = SKUStandard; r.Properties.PublicNetworkAccess = Disabled }),
			code: CodeDisablingPublicNetworkAccessNotSupported, status: 400, message: "Standard"},
		{name: "public access disabled on Premium", next: with(premium(), func(r *Registry) { r.Properties.PublicNetworkAccess = Disabled })},
		{name: "default action Deny on Standard", next: with(premium(), func(r *Registry) { r.SKU = SKUStandard; r.Properties.NetworkRuleSet.DefaultAction = ActionDeny }),
			code: CodeNetworkRulesNotSupported, status: 400, message: "need Premium"},
		{name: "ip rules on Basic", next: with(premium(), func(r *Registry) { r.SKU = SKUBasic; r.Properties.NetworkRuleSet.IPRules = rules(1) }),
			code: CodeNetworkRulesNotSupported, status: 400, message: "ipRules"},
		{name: "downgrade to Standard with rules", old: ptr(with(premium(), func(r *Registry) { r.Properties.NetworkRuleSet.IPRules = rules(2) })),
			next: with(premium(), func(r *Registry) { r.SKU = SKUStandard; r.Properties.NetworkRuleSet.IPRules = rules(2) }), code: CodeNetworkRulesNotSupported, status: 400},
		{name: "deny with rules on Premium", next: with(premium(), func(r *Registry) {
			r.Properties.NetworkRuleSet = NetworkRuleSet{DefaultAction: ActionDeny, IPRules: rules(3)}
		})},
		{name: "200 rules is the default quota", next: with(premium(), func(r *Registry) { r.Properties.NetworkRuleSet.IPRules = rules(200) })},
		{name: "201 rules exceed the default quota", next: with(premium(), func(r *Registry) { r.Properties.NetworkRuleSet.IPRules = rules(201) }),
			code: CodeIPRuleQuotaExceeded, status: 400, message: "201 rules, more than the quota of 200"},
		{name: "configured quota", next: with(premium(), func(r *Registry) { r.Properties.NetworkRuleSet.IPRules = rules(11) }),
			vc: ValidationContext{IPRuleQuota: 10}, code: CodeIPRuleQuotaExceeded, status: 400, message: "quota of 10"},
		{name: "bad CIDR names value and index", next: with(premium(), func(r *Registry) {
			r.Properties.NetworkRuleSet.IPRules = append(rules(3), IPRule{Action: ActionAllow, Value: "10.0.0.0/33"})
		}), code: CodeInvalidIPRule, status: 400, message: `properties.networkRuleSet.ipRules[3].value "10.0.0.0/33" is not an IPv4/IPv6 address or CIDR`},
		{name: "not an address", next: with(premium(), func(r *Registry) {
			r.Properties.NetworkRuleSet.IPRules = []IPRule{{ActionAllow, "_PublicIPv4Address_"}}
		}),
			code: CodeInvalidIPRule, status: 400, message: `"_PublicIPv4Address_"`},
		{name: "IPv6 CIDR and address", next: with(premium(), func(r *Registry) {
			r.Properties.NetworkRuleSet.IPRules = []IPRule{{ActionAllow, "2001:db8::/32"}, {ActionAllow, "::1"}, {ActionAllow, "192.0.2.7"}}
		})},
		{name: "export disabled on Standard", next: with(premium(), func(r *Registry) {
			r.SKU = SKUStandard
			r.Properties.Policies.ExportPolicy.Status = StatusDisabled
		}), code: CodeExportPolicyNotSupported, status: 400, message: "Premium"},
		{name: "export disabled with public access enabled", old: ptr(premium()), next: with(premium(), func(r *Registry) {
			r.Properties.Policies.ExportPolicy.Status = StatusDisabled
		}), code: CodeExportPolicyRequiresPrivateAccess, status: 400, message: "publicNetworkAccess"},
		{name: "export and public access disabled in one request", old: ptr(premium()), next: exportOff},
		{name: "export disabled at create with public access disabled", next: exportOff},
		{name: "changing export with pipelines", old: ptr(premium()), next: exportOff, vc: ValidationContext{HasExportPipelines: true},
			code: CodeExportPipelinesExist, status: 409, message: "delete the pipelines first"},
		{name: "re-enabling export with pipelines", old: &exportOff, next: with(exportOff, func(r *Registry) { r.Properties.Policies.ExportPolicy.Status = StatusEnabled }),
			vc: ValidationContext{HasExportPipelines: true}, code: CodeExportPipelinesExist, status: 409},
		{name: "unchanged export with pipelines", old: &exportOff, next: exportOff, vc: ValidationContext{HasExportPipelines: true}},
		{name: "enabling public access while exports disabled", old: &exportOff, next: with(exportOff, func(r *Registry) { r.Properties.PublicNetworkAccess = Enabled }),
			code: CodeBadRequest, status: 400, message: "enabling public network access is not supported while exports are disabled"},
		{name: "enabling both", old: &exportOff, next: with(exportOff, func(r *Registry) {
			r.Properties.PublicNetworkAccess = Enabled
			r.Properties.Policies.ExportPolicy.Status = StatusEnabled
		})},
		{name: "retention 365", next: with(premium(), func(r *Registry) { r.Properties.Policies.RetentionPolicy.Days = 365 })},
		{name: "retention 0", next: with(premium(), func(r *Registry) { r.Properties.Policies.RetentionPolicy.Days = 0 })},
		{name: "retention 366", next: with(premium(), func(r *Registry) { r.Properties.Policies.RetentionPolicy.Days = 366 }),
			code: CodeInvalidRetentionDays, status: 400, message: "366"},
		{name: "retention -1", next: with(premium(), func(r *Registry) { r.Properties.Policies.RetentionPolicy.Days = -1 }),
			code: CodeInvalidRetentionDays, status: 400, message: "-1"},
		{name: "data endpoint on Standard", next: with(premium(), func(r *Registry) { r.SKU = SKUStandard; r.Properties.DataEndpointEnabled = true }),
			code: CodeDataEndpointNotSupported, status: 400, message: "properties.dataEndpointEnabled true is not supported on the Standard SKU"},
		{name: "data endpoint on Premium", next: with(premium(), func(r *Registry) { r.Properties.DataEndpointEnabled = true })},
		{name: "soft delete 1 day", next: with(premium(), func(r *Registry) { r.Properties.Policies.SoftDeletePolicy.RetentionDays = 1 })},
		{name: "soft delete 90 days", next: with(premium(), func(r *Registry) { r.Properties.Policies.SoftDeletePolicy.RetentionDays = 90 })},
		{name: "soft delete 0 days", next: with(premium(), func(r *Registry) { r.Properties.Policies.SoftDeletePolicy.RetentionDays = 0 }),
			code: CodeInvalidSoftDeleteRetentionDays, status: 400, message: "properties.policies.softDeletePolicy.retentionDays 0 is outside 1 to 90"},
		{name: "soft delete 91 days", next: with(premium(), func(r *Registry) { r.Properties.Policies.SoftDeletePolicy.RetentionDays = 91 }),
			code: CodeInvalidSoftDeleteRetentionDays, status: 400, message: "91"},
		{name: "anonymous pull on Basic", next: with(premium(), func(r *Registry) { r.SKU = SKUBasic; r.Properties.AnonymousPullEnabled = true }),
			code: CodeAnonymousPullNotSupported, status: 400},
		{name: "anonymous pull on Standard", next: with(premium(), func(r *Registry) { r.SKU = SKUStandard; r.Properties.AnonymousPullEnabled = true })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.old, c.next, c.vc)
			checkErr(t, err, c.code, c.status, c.message)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func checkErr(t *testing.T, err error, code string, status int, message string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("error %v, want none", err)
		}
		return
	}
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v, want *Error %s", err, code)
	}
	if me.Code != code || me.Status != status || !strings.Contains(me.Message, message) {
		t.Fatalf("error %d %s %q, want %d %s containing %q", me.Status, me.Code, me.Message, status, code, message)
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"abcde": true, "ABC12": true, strings.Repeat("a", 50): true,
		"abcd": false, strings.Repeat("a", 51): false, "my-registry": false, "my_registry": false, "": false, "regístry": false,
	} {
		err := ValidateName(name)
		if (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil {
			checkErr(t, err, CodeInvalidRegistryName, 400, name)
		}
	}
}

func TestValidateExportPipelineCreate(t *testing.T) {
	if err := ValidateExportPipelineCreate("reg01", premium()); err != nil {
		t.Fatalf("exports enabled: %v", err)
	}
	off := with(premium(), func(r *Registry) { r.Properties.Policies.ExportPolicy.Status = StatusDisabled })
	checkErr(t, ValidateExportPipelineCreate("reg01", off), CodeExportsDisabled, 400, `registry "reg01" has exports disabled`)
}
