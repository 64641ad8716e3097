package model

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustVersion(t testing.TB, s string) APIVersion {
	t.Helper()
	v, ok := ParseAPIVersion(s)
	if !ok {
		t.Fatalf("api-version %s not supported", s)
	}
	return v
}

func TestParseAPIVersion(t *testing.T) {
	for _, v := range []string{"2019-05-01", "2021-06-01-preview", "2023-07-01", "2025-11-01"} {
		if _, ok := ParseAPIVersion(v); !ok {
			t.Errorf("%s not supported", v)
		}
	}
	for _, v := range []string{"", "2017-10-01", "2019-05-02", "2021-06-01-PREVIEW", "latest", "2099-01-01"} {
		if _, ok := ParseAPIVersion(v); ok {
			t.Errorf("%s supported", v)
		}
	}
}

func TestDecode_CaseInsensitiveLastDuplicateWinsCanonicalEnums(t *testing.T) {
	// What az resource update --set properties.policies.exportPolicy.Status=disabled
	// sends: the GET body's "status" plus the new "Status".
	body := `{"location":"westeurope","sku":{"NAME":"premium"},"properties":{
	  "PublicNetworkAccess":"enabled","publicNetworkAccess":"disabled",
	  "policies":{"exportPolicy":{"status":"enabled","Status":"DISABLED"}},
	  "networkRuleSet":{"defaultaction":"deny","IPRULES":[{"ACTION":"allow","Value":"10.0.0.0/8"}]},
	  "networkRuleBypassOptions":"none","zoneRedundancy":"ENABLED"}}`
	got, err := Decode([]byte(body), mustVersion(t, "2021-06-01-preview"), Defaults())
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if got.SKU != SKUPremium || p.PublicNetworkAccess != Disabled || p.Policies.ExportPolicy.Status != StatusDisabled ||
		p.NetworkRuleSet.DefaultAction != ActionDeny || p.NetworkRuleBypassOptions != BypassNone || p.ZoneRedundancy != Enabled ||
		!reflect.DeepEqual(p.NetworkRuleSet.IPRules, []IPRule{{ActionAllow, "10.0.0.0/8"}}) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestDecode_TypeAndEnumErrorsNameTheField(t *testing.T) {
	v := mustVersion(t, "2023-07-01")
	for body, want := range map[string]string{
		`{"properties":{"adminUserEnabled":"yes"}}`:                             `properties.adminUserEnabled: want a boolean, got "yes"`,
		`{"properties":{"publicNetworkAccess":"maybe"}}`:                        `properties.publicNetworkAccess: want one of Enabled, Disabled, got "maybe"`,
		`{"properties":{"networkRuleSet":{"ipRules":[{"value":"1.2.3.4"},3]}}}`: `properties.networkRuleSet.ipRules[1]: want an object, got 3`,
		`{"properties":{"networkRuleSet":{"ipRules":{"value":"1.2.3.4"}}}}`:     `properties.networkRuleSet.ipRules: want an array, got an object`,
		`{"properties":{"networkRuleSet":{"ipRules":[{"action":"Deny"}]}}}`:     `properties.networkRuleSet.ipRules[0].action: want one of Allow, got "Deny"`,
		`{"properties":{"policies":{"retentionPolicy":{"days":"7"}}}}`:          `properties.policies.retentionPolicy.days: want an integer, got "7"`,
		`{"properties":{"policies":{"retentionPolicy":{"days":1.5}}}}`:          `properties.policies.retentionPolicy.days: want an integer, got 1.5`,
		`{"sku":{"name":"Gold"}}`:                                               `sku.name: want one of Basic, Standard, Premium, got "Gold"`,
		`{"sku":"Premium"}`:                                                     `sku: want an object, got "Premium"`,
		`{"tags":{"a":1}}`:                                                      `tags.a: want a string, got 1`,
		`[]`:                                                                    `(body): want an object, got an array`,
		`{"location":"x"`:                                                       `malformed JSON`,
		`{"location":"x",}`:                                                     `malformed JSON at offset`,
		`{"location":"x"} {}`:                                                   `unexpected data after the value`,
		strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100):           `nested deeper than`,
	} {
		_, err := Decode([]byte(body), v, Defaults())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%.60s) = %v, want %q", body, err, want)
		}
		if me, ok := err.(*Error); !ok || me.Code != CodeInvalidRequestContent || me.Status != 400 {
			t.Errorf("Decode(%.60s) error %#v is not a 400 InvalidRequestContent", body, err)
		}
	}
}

func TestDecode_PatchMerges(t *testing.T) {
	v := mustVersion(t, "2023-07-01")
	base := premium()
	base.Tags = map[string]string{"env": "prod"}
	base.Properties.AdminUserEnabled = true
	base.Properties.NetworkRuleSet = NetworkRuleSet{DefaultAction: ActionAllow, IPRules: rules(2)}

	got, err := Decode([]byte(`{"properties":{"networkRuleSet":{"defaultAction":"Deny"}}}`), v, base)
	if err != nil {
		t.Fatal(err)
	}
	if got.Properties.NetworkRuleSet.DefaultAction != ActionDeny || len(got.Properties.NetworkRuleSet.IPRules) != 2 ||
		!got.Properties.AdminUserEnabled || got.Tags["env"] != "prod" || got.SKU != SKUPremium {
		t.Fatalf("PATCH with only defaultAction = %+v; want ipRules, admin, tags and sku kept", got)
	}
	got, err = Decode([]byte(`{"properties":{"networkRuleSet":{"ipRules":[]}}}`), v, base)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Properties.NetworkRuleSet.IPRules); n != 0 || got.Properties.NetworkRuleSet.IPRules == nil {
		t.Fatalf("ipRules: [] left %d rules (nil=%v)", n, got.Properties.NetworkRuleSet.IPRules == nil)
	}
	if len(base.Properties.NetworkRuleSet.IPRules) != 2 {
		t.Fatal("Decode modified its base")
	}
	got, err = Decode([]byte(`{"properties":{"networkRuleSet":null,"adminUserEnabled":null}}`), v, base)
	if err != nil || len(got.Properties.NetworkRuleSet.IPRules) != 2 || !got.Properties.AdminUserEnabled {
		t.Fatalf("null fields changed the registry: %+v, %v", got, err)
	}
}

func TestDecode_ReadOnlyIgnored(t *testing.T) {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	old := premium()
	old.Properties.LoginServer, old.Properties.CreationDate, old.Properties.ProvisioningState = "reg01.example.test", created, ProvisioningSucceeded
	base := Defaults().WithReadOnly(old)
	got, err := Decode([]byte(`{"location":"westeurope","sku":{"name":"Premium","tier":"Basic"},"properties":{
	  "loginServer":"evil.example","creationDate":"1999-01-01T00:00:00Z","provisioningState":"Failed",
	  "privateEndpointConnections":[{"id":"x"}],"policies":{"retentionPolicy":{"lastUpdatedTime":"2000-01-01T00:00:00Z"}}}}`),
		mustVersion(t, "2023-07-01"), base)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if p.LoginServer != "reg01.example.test" || !p.CreationDate.Equal(created) || p.ProvisioningState != ProvisioningSucceeded ||
		!p.Policies.RetentionPolicy.LastUpdatedTime.IsZero() || got.SKU != SKUPremium {
		t.Fatalf("read-only properties were taken from the body: %+v", got)
	}
}

func TestDecode_PropertiesOutsideTheVersionAreIgnored(t *testing.T) {
	body := []byte(`{"properties":{"policies":{"exportPolicy":{"status":"disabled"}},"anonymousPullEnabled":true,
	  "publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}}`)
	old, err := Decode(body, mustVersion(t, "2019-05-01"), premium())
	if err != nil {
		t.Fatal(err)
	}
	p := old.Properties
	if p.Policies.ExportPolicy.Status != StatusEnabled || p.AnonymousPullEnabled || p.PublicNetworkAccess != Enabled || p.NetworkRuleBypassOptions != BypassAzureServices {
		t.Fatalf("2019-05-01 accepted newer properties: %+v", p)
	}
	newer, err := Decode(body, mustVersion(t, "2021-06-01-preview"), premium())
	if err != nil {
		t.Fatal(err)
	}
	if newer.Properties.Policies.ExportPolicy.Status != StatusDisabled || !newer.Properties.AnonymousPullEnabled {
		t.Fatalf("2021-06-01-preview ignored exportPolicy: %+v", newer.Properties)
	}
}

func TestShape_PerVersion(t *testing.T) {
	r := premium()
	r.Properties.LoginServer = "reg01.example.test"
	get := func(v string) map[string]any {
		m := r.Shape("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/reg01", "reg01", mustVersion(t, v))
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	old := get("2019-05-01")["properties"].(map[string]any)
	if _, ok := old["publicNetworkAccess"]; ok {
		t.Error("2019-05-01 shows publicNetworkAccess")
	}
	if _, ok := old["policies"].(map[string]any)["exportPolicy"]; ok {
		t.Error("2019-05-01 shows exportPolicy")
	}
	full := get("2021-06-01-preview")
	props := full["properties"].(map[string]any)
	if props["publicNetworkAccess"] != "Enabled" || props["policies"].(map[string]any)["exportPolicy"].(map[string]any)["status"] != "enabled" ||
		full["sku"].(map[string]any)["tier"] != "Premium" || full["type"] != RegistryType || props["loginServer"] != "reg01.example.test" {
		t.Errorf("2021-06-01-preview shape %v", full)
	}
	if _, ok := props["policies"].(map[string]any)["softDeletePolicy"]; ok {
		t.Error("softDeletePolicy shown before 2022-02-01-preview")
	}
	if _, ok := get("2023-07-01")["properties"].(map[string]any)["policies"].(map[string]any)["softDeletePolicy"]; ok {
		t.Error("softDeletePolicy shown in stable 2023-07-01")
	}
}

func TestStoredRoundTrip(t *testing.T) {
	r := premium()
	r.Tags = map[string]string{"Env": "prod"}
	r.Properties.NetworkRuleSet.IPRules = rules(3)
	b, err := r.MarshalProperties()
	if err != nil {
		t.Fatal(err)
	}
	tags, err := json.Marshal(r.Tags)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalStored(r.Location, r.SKU, b, tags)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip = %+v, want %+v", got, r)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"location":"westeurope","sku":{"name":"Premium"},"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled","Status":"enabled"}}}}`,
		`{"properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"10.0.0.0/33"}]}}}`,
		`{"properties":{"adminUserEnabled":"yes"}}`, `[]`, `null`, `{"a":[[[[{}]]]]}`, `{"tags":{"A":"1","a":"2"}}`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	v := Latest()
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Decode(body, v, premium())
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			return
		}
		_ = Validate(nil, r, ValidationContext{})
		if _, err := json.Marshal(r.Shape("/x", "x", v)); err != nil {
			t.Fatalf("Shape does not marshal: %v", err)
		}
	})
}
