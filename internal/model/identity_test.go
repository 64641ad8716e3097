package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const (
	uaiA = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a"
	uaiB = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b"
)

func TestDecode_Identity(t *testing.T) {
	v := mustVersion(t, "2023-07-01")
	system := Defaults()
	system.Identity = Identity{Type: IdentitySystemAssigned}
	for _, tc := range []struct {
		name, body string
		base       Registry
		want       Identity
	}{
		{"absent keeps none", `{}`, Defaults(), Identity{}},
		{"absent keeps base", `{}`, system, Identity{Type: IdentitySystemAssigned}},
		{"null keeps base", `{"identity":null}`, system, Identity{Type: IdentitySystemAssigned}},
		{"system, any case", `{"IDENTITY":{"Type":"systemassigned"}}`, Defaults(), Identity{Type: IdentitySystemAssigned}},
		{"none replaces", `{"identity":{"type":"none"}}`, system, Identity{Type: IdentityNone}},
		{"user", `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiB + `":{},"` + uaiA + `":{}}}}`, Defaults(),
			Identity{Type: IdentityUserAssigned, UserAssigned: []string{uaiA, uaiB}}},
		{"both without space", `{"identity":{"type":"UserAssigned,SystemAssigned","userAssignedIdentities":{"` + uaiA + `":{}}}}`, Defaults(),
			Identity{Type: IdentitySystemAndUserAssigned, UserAssigned: []string{uaiA}}},
		{"null member detaches", `{"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"` + uaiA + `":{},"` + uaiB + `":null}}}`, Defaults(),
			Identity{Type: IdentitySystemAndUserAssigned, UserAssigned: []string{uaiA}}},
		{"case duplicates collapse", `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiA + `":{},"` + strings.ToUpper(uaiA) + `":{}}}}`, Defaults(),
			Identity{Type: IdentityUserAssigned, UserAssigned: []string{strings.ToUpper(uaiA)}}},
		{"replaces the base list whole", `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiB + `":{}}}}`,
			Registry{Identity: Identity{Type: IdentityUserAssigned, UserAssigned: []string{uaiA}}}, Identity{Type: IdentityUserAssigned, UserAssigned: []string{uaiB}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.body), v, tc.base)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Identity, tc.want) {
				t.Errorf("identity %+v, want %+v", got.Identity, tc.want)
			}
		})
	}
}

func TestDecode_IdentityErrorsNameTheField(t *testing.T) {
	v := mustVersion(t, "2025-11-01")
	for _, tc := range []struct{ body, target, code, msg string }{
		{`{"identity":{"type":"Magic"}}`, "identity.type", CodeInvalidRequestContent, `identity.type: want one of SystemAssigned, UserAssigned, 'SystemAssigned, UserAssigned', None, got "Magic"`},
		{`{"identity":{"type":"None, SystemAssigned"}}`, "identity.type", CodeInvalidRequestContent, `got "None, SystemAssigned"`},
		{`{"identity":{"type":"SystemAssigned, SystemAssigned"}}`, "identity.type", CodeInvalidRequestContent, `got "SystemAssigned, SystemAssigned"`},
		{`{"identity":{"type":3}}`, "identity.type", CodeInvalidRequestContent, "got 3"},
		{`{"identity":{}}`, "identity.type", CodeInvalidRequestContent, "identity.type is required"},
		{`{"identity":"SystemAssigned"}`, "identity", CodeInvalidRequestContent, "want an object"},
		{`{"identity":{"type":"UserAssigned"}}`, "identity.userAssignedIdentities", CodeInvalidRequestContent, "needs at least one identity"},
		{`{"identity":{"type":"UserAssigned","userAssignedIdentities":[]}}`, "identity.userAssignedIdentities", CodeInvalidRequestContent, "want an object"},
		{`{"identity":{"type":"SystemAssigned","userAssignedIdentities":{"` + uaiA + `":{}}}}`, "identity.userAssignedIdentities", CodeInvalidRequestContent, "only allowed when identity.type names UserAssigned"},
		{`{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiA + `":"x"}}}`, "identity.userAssignedIdentities['" + uaiA + "']", CodeInvalidRequestContent, "want an object"},
		{`{"identity":{"type":"UserAssigned","userAssignedIdentities":{"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Web/sites/x":{}}}}`,
			"identity.userAssignedIdentities", CodeInvalidIdentityResourceID, `"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Web/sites/x" is not the resource id`},
		{`{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiA + `/more":{}}}}`,
			"identity.userAssignedIdentities", CodeInvalidIdentityResourceID, uaiA + `/more`},
		{tooMany(), "identity.userAssignedIdentities", CodeInvalidRequestContent, "65 identities, more than the limit of 64"},
	} {
		_, err := Decode([]byte(tc.body), v, Defaults())
		var me *Error
		if !errors.As(err, &me) || me.Status != 400 || me.Target != tc.target || me.Code != tc.code || !strings.Contains(me.Message, tc.msg) {
			t.Errorf("%s: got %#v, want 400 %s at %s containing %q", tc.body, err, tc.code, tc.target, tc.msg)
		}
	}
}

// An api-version without the identity block ignores it on input (as any
// unknown member) and leaves it out of the answer.
func TestIdentity_PerAPIVersion(t *testing.T) {
	old := mustVersion(t, "2019-05-01")
	got, err := Decode([]byte(`{"identity":{"type":"Magic"}}`), old, Defaults())
	if err != nil || !got.Identity.None() {
		t.Fatalf("2019-05-01 read identity: %+v, %v", got.Identity, err)
	}
	reg := Defaults()
	reg.Identity = Identity{Type: IdentitySystemAssigned}
	if _, ok := reg.Shape("/id", "r", old)["identity"]; ok {
		t.Error("2019-05-01 shows identity")
	}
	if _, ok := reg.Shape("/id", "r", mustVersion(t, "2019-12-01-preview"))["identity"]; !ok {
		t.Error("2019-12-01-preview lacks identity")
	}
	if old.HasIdentity() || !Latest().HasIdentity() {
		t.Error("HasIdentity")
	}
}

func TestShape_Identity(t *testing.T) {
	v := Latest()
	for _, tc := range []struct {
		name    string
		ident   Identity
		details IdentityDetails
		want    string // JSON of the identity member; "" for none
	}{
		{"none", Identity{Type: IdentityNone}, IdentityDetails{}, ""},
		{"zero", Identity{}, IdentityDetails{}, ""},
		{"system", Identity{Type: IdentitySystemAssigned}, IdentityDetails{PrincipalID: "p", TenantID: "t"},
			`{"principalId":"p","tenantId":"t","type":"SystemAssigned"}`},
		{"user, one resolved", Identity{Type: IdentityUserAssigned, UserAssigned: []string{uaiA, uaiB}},
			IdentityDetails{PrincipalID: "ignored", UserAssigned: map[string]UserIdentityDetails{strings.ToLower(uaiA): {PrincipalID: "pa", ClientID: "ca"}}},
			`{"type":"UserAssigned","userAssignedIdentities":{"` + uaiA + `":{"clientId":"ca","principalId":"pa"},"` + uaiB + `":{}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := Defaults()
			reg.Identity, reg.IdentityDetails = tc.ident, tc.details
			doc := reg.Shape("/id", "r", v)
			got, ok := doc["identity"]
			if tc.want == "" {
				if ok {
					t.Fatalf("identity shown: %v", got)
				}
				return
			}
			b, _ := json.Marshal(got)
			if string(b) != tc.want {
				t.Errorf("identity %s, want %s", b, tc.want)
			}
			props := doc["properties"].(map[string]any)
			if _, ok := props["moatIdentity"]; ok {
				t.Error("the stored key shows as a property")
			}
		})
	}
}

// The stored form keeps the identity under a moat-internal key and never
// the details; records stored before it existed read as None.
func TestStoredIdentityRoundTrip(t *testing.T) {
	reg := Defaults()
	reg.Location, reg.SKU = "westeurope", SKUBasic
	reg.Identity = Identity{Type: IdentitySystemAndUserAssigned, UserAssigned: []string{uaiA}}
	reg.IdentityDetails = IdentityDetails{PrincipalID: "secret-ish"}
	props, err := reg.MarshalProperties()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(props), `"moatIdentity":{"type":"SystemAssigned, UserAssigned","userAssigned":["`+uaiA+`"]}`) ||
		strings.Contains(string(props), "secret-ish") {
		t.Fatalf("stored %s", props)
	}
	back, err := UnmarshalStored("westeurope", SKUBasic, props, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Identity, reg.Identity) || back.Properties.AdminUserEnabled != reg.Properties.AdminUserEnabled {
		t.Errorf("read back %+v", back.Identity)
	}
	none := Defaults()
	props, _ = none.MarshalProperties()
	if strings.Contains(string(props), "moatIdentity") {
		t.Errorf("a registry without identity stores %s", props)
	}
	legacy, err := UnmarshalStored("westeurope", SKUBasic, []byte(`{"adminUserEnabled":true}`), nil)
	if err != nil || !legacy.Identity.None() || !legacy.Properties.AdminUserEnabled {
		t.Errorf("legacy record: %+v %v", legacy, err)
	}
}

func TestClone_IdentityNotAliased(t *testing.T) {
	reg := Registry{Identity: Identity{Type: IdentityUserAssigned, UserAssigned: []string{uaiA}}}
	c := reg.Clone()
	c.Identity.UserAssigned[0] = uaiB
	if reg.Identity.UserAssigned[0] != uaiA {
		t.Error("Clone aliases the user-assigned list")
	}
}

// FuzzDecodeIdentity: no body panics Decode, and what it accepts has a
// consistent identity.
func FuzzDecodeIdentity(f *testing.F) {
	for _, s := range []string{
		`{"identity":{"type":"SystemAssigned"}}`,
		`{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiA + `":{}}}}`,
		`{"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"` + uaiA + `":null,"` + uaiB + `":{}}}}`,
		`{"identity":{"type":"None"}}`,
		`{"identity":{"type":",,"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reg, err := Decode(body, Latest(), Defaults())
		if err != nil {
			return
		}
		id := reg.Identity
		if !id.None() && !strings.Contains(strings.Join(IdentityTypes, "|"), id.Type) {
			t.Fatalf("type %q", id.Type)
		}
		user := id.Type == IdentityUserAssigned || id.Type == IdentitySystemAndUserAssigned
		if user != (len(id.UserAssigned) > 0) {
			t.Fatalf("type %q with %d identities", id.Type, len(id.UserAssigned))
		}
		for _, ua := range id.UserAssigned {
			if !IsUserAssignedIdentityID(ua) {
				t.Fatalf("accepted id %q", ua)
			}
		}
	})
}

func tooMany() string {
	var b strings.Builder
	b.WriteString(`{"identity":{"type":"UserAssigned","userAssignedIdentities":{`)
	for i := range MaxUserAssignedIdentities + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"%s%d":{}`, uaiA, i)
	}
	b.WriteString("}}}")
	return b.String()
}
