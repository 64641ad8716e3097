package model

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Registry type and enum values, in ACR's canonical spelling.
const (
	RegistryType = "Microsoft.ContainerRegistry/registries"

	SKUBasic    = "Basic"
	SKUStandard = "Standard"
	SKUPremium  = "Premium"

	Enabled  = "Enabled" // publicNetworkAccess, zoneRedundancy
	Disabled = "Disabled"

	ActionAllow = "Allow" // defaultAction, ipRules[].action
	ActionDeny  = "Deny"

	BypassAzureServices = "AzureServices" // networkRuleBypassOptions
	BypassNone          = "None"

	// Policy statuses are lower-case in ACR.
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"

	TrustNotary = "Notary"

	ProvisioningSucceeded = "Succeeded"
)

// Registry is a container registry resource: the parts ARM shows besides its
// id and name.
type Registry struct {
	Location   string
	Tags       map[string]string
	SKU        string
	Properties Properties
	// Identity is the registry's managed identity (see identity.go); it is
	// stored with the properties under a moat-internal key.
	Identity Identity
	// IdentityDetails are the identity's read-only values for Shape, filled
	// by the caller from the identity service; never stored.
	IdentityDetails IdentityDetails
}

// Properties are the registry's ARM properties with ACR's JSON names; this is
// also the JSON moat stores (meta.Registry.Properties).
type Properties struct {
	LoginServer                      string         `json:"loginServer,omitempty"`
	CreationDate                     time.Time      `json:"creationDate"`
	ProvisioningState                string         `json:"provisioningState,omitempty"`
	AdminUserEnabled                 bool           `json:"adminUserEnabled"`
	AnonymousPullEnabled             bool           `json:"anonymousPullEnabled"`
	PublicNetworkAccess              string         `json:"publicNetworkAccess"`
	NetworkRuleSet                   NetworkRuleSet `json:"networkRuleSet"`
	NetworkRuleBypassOptions         string         `json:"networkRuleBypassOptions"`
	NetworkRuleBypassAllowedForTasks bool           `json:"networkRuleBypassAllowedForTasks"`
	Policies                         Policies       `json:"policies"`
	DataEndpointEnabled              bool           `json:"dataEndpointEnabled"`
	ZoneRedundancy                   string         `json:"zoneRedundancy"`
}

// NetworkRuleSet is the registry firewall.
type NetworkRuleSet struct {
	DefaultAction string   `json:"defaultAction"`
	IPRules       []IPRule `json:"ipRules"`
}

// IPRule allows one address or CIDR range.
type IPRule struct {
	Action string `json:"action"`
	Value  string `json:"value"`
}

// Policies are the registry's policies; statuses are lower-case.
type Policies struct {
	QuarantinePolicy StatusPolicy     `json:"quarantinePolicy"`
	TrustPolicy      TrustPolicy      `json:"trustPolicy"`
	RetentionPolicy  RetentionPolicy  `json:"retentionPolicy"`
	ExportPolicy     StatusPolicy     `json:"exportPolicy"`
	SoftDeletePolicy SoftDeletePolicy `json:"softDeletePolicy"`
}

// StatusPolicy is a policy that is only switched on or off.
type StatusPolicy struct {
	Status string `json:"status"`
}

// TrustPolicy is content trust.
type TrustPolicy struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

// RetentionPolicy keeps untagged manifests Days days.
type RetentionPolicy struct {
	Days            int       `json:"days"`
	LastUpdatedTime time.Time `json:"lastUpdatedTime"`
	Status          string    `json:"status"`
}

// SoftDeletePolicy keeps deleted artifacts RetentionDays days.
type SoftDeletePolicy struct {
	RetentionDays   int       `json:"retentionDays"`
	LastUpdatedTime time.Time `json:"lastUpdatedTime"`
	Status          string    `json:"status"`
	// RetentionDaysDefaulted records, in the stored form only (Shape never
	// shows it), that no request ever set retentionDays: RetentionDays is
	// ACR's default of 7. moat check --live reads it so that a registry
	// deployed from a template without retentionDays gets the template's
	// outcome. Records stored before the field existed read as set.
	RetentionDaysDefaulted bool `json:"moatRetentionDaysDefaulted,omitempty"`
}

// Defaults is a registry as ACR creates it when a request names nothing:
// public access on, firewall open, trusted services allowed, exports
// enabled, the other policies disabled.
func Defaults() Registry {
	return Registry{Properties: Properties{
		PublicNetworkAccess:      Enabled,
		NetworkRuleSet:           NetworkRuleSet{DefaultAction: ActionAllow, IPRules: []IPRule{}},
		NetworkRuleBypassOptions: BypassAzureServices,
		ZoneRedundancy:           Disabled,
		Policies: Policies{
			QuarantinePolicy: StatusPolicy{Status: StatusDisabled},
			TrustPolicy:      TrustPolicy{Type: TrustNotary, Status: StatusDisabled},
			RetentionPolicy:  RetentionPolicy{Days: 7, Status: StatusDisabled},
			ExportPolicy:     StatusPolicy{Status: StatusEnabled},
			SoftDeletePolicy: SoftDeletePolicy{RetentionDays: 7, Status: StatusDisabled, RetentionDaysDefaulted: true},
		},
	}}
}

// WithReadOnly returns r with the read-only values of from: what a full PUT
// must keep although its body does not (and may not) set them.
func (r Registry) WithReadOnly(from Registry) Registry {
	r.Properties.LoginServer = from.Properties.LoginServer
	r.Properties.CreationDate = from.Properties.CreationDate
	r.Properties.ProvisioningState = from.Properties.ProvisioningState
	r.Properties.Policies.RetentionPolicy.LastUpdatedTime = from.Properties.Policies.RetentionPolicy.LastUpdatedTime
	r.Properties.Policies.SoftDeletePolicy.LastUpdatedTime = from.Properties.Policies.SoftDeletePolicy.LastUpdatedTime
	return r
}

// Clone returns a deep copy of r (Decode never aliases its base).
func (r Registry) Clone() Registry {
	if r.Tags != nil {
		t := make(map[string]string, len(r.Tags))
		for k, v := range r.Tags {
			t[k] = v
		}
		r.Tags = t
	}
	r.Properties.NetworkRuleSet.IPRules = append([]IPRule{}, r.Properties.NetworkRuleSet.IPRules...)
	r.Identity.UserAssigned = slices.Clone(r.Identity.UserAssigned)
	r.IdentityDetails.UserAssigned = maps.Clone(r.IdentityDetails.UserAssigned)
	return r
}

// Decode reads a registry PUT or PATCH body in api-version v onto base and
// returns the result; base is not modified. See the package doc for the
// merge, case and version rules. Errors are *Error.
func Decode(body []byte, v APIVersion, base Registry) (Registry, error) {
	tree, err := parseJSON(body)
	if err != nil {
		return Registry{}, err
	}
	rd := &reader{version: v}
	out := base.Clone()
	root, ok := rd.obj(tree, "(body)")
	if !ok {
		return Registry{}, rd.err
	}
	rd.stringField(root, "location", "location", &out.Location)
	if tv, ok := field(root, "tags"); ok {
		out.Tags = rd.tags(tv)
	}
	if sv, ok := field(root, "sku"); ok {
		if so, ok := rd.obj(sv, "sku"); ok {
			rd.enumField(so, "name", "sku.name", &out.SKU, SKUBasic, SKUStandard, SKUPremium)
		}
	}
	if pv, ok := field(root, "properties"); ok {
		if po, ok := rd.obj(pv, "properties"); ok {
			rd.properties(po, &out.Properties)
		}
	}
	if v.HasIdentity() {
		if iv, ok := field(root, "identity"); ok {
			if idObj, ok := rd.obj(iv, "identity"); ok {
				rd.identity(idObj, &out.Identity)
			}
		}
	}
	if rd.err != nil {
		return Registry{}, rd.err
	}
	return out, nil
}

func (rd *reader) tags(v any) map[string]string {
	o, ok := rd.obj(v, "tags")
	if !ok {
		return nil
	}
	// Tag names are data, not property names: they keep the case sent (of
	// the last duplicate, as for properties).
	t := make(map[string]string, len(o))
	for _, m := range o {
		s, ok := m.value.(string)
		if !ok {
			rd.fail(typeError("tags."+m.name, "a string", m.value))
			return nil
		}
		t[m.name] = s
	}
	return t
}

func (rd *reader) properties(po object, p *Properties) {
	rd.boolField(po, "adminUserEnabled", "properties.adminUserEnabled", &p.AdminUserEnabled)
	if rd.version.has(featPublicNetworkAccess) {
		rd.enumField(po, "publicNetworkAccess", "properties.publicNetworkAccess", &p.PublicNetworkAccess, Enabled, Disabled)
		rd.boolField(po, "dataEndpointEnabled", "properties.dataEndpointEnabled", &p.DataEndpointEnabled)
	}
	if rd.version.has(featBypassOptions) {
		rd.enumField(po, "networkRuleBypassOptions", "properties.networkRuleBypassOptions", &p.NetworkRuleBypassOptions, BypassAzureServices, BypassNone)
		rd.enumField(po, "zoneRedundancy", "properties.zoneRedundancy", &p.ZoneRedundancy, Enabled, Disabled)
	}
	if rd.version.has(featExportPolicy) {
		rd.boolField(po, "anonymousPullEnabled", "properties.anonymousPullEnabled", &p.AnonymousPullEnabled)
	}
	if rd.version.has(featBypassForTasks) {
		rd.boolField(po, "networkRuleBypassAllowedForTasks", "properties.networkRuleBypassAllowedForTasks", &p.NetworkRuleBypassAllowedForTasks)
	}
	if nv, ok := field(po, "networkRuleSet"); ok {
		if no, ok := rd.obj(nv, "properties.networkRuleSet"); ok {
			rd.networkRuleSet(no, &p.NetworkRuleSet)
		}
	}
	if pv, ok := field(po, "policies"); ok {
		if pol, ok := rd.obj(pv, "properties.policies"); ok {
			rd.policies(pol, &p.Policies)
		}
	}
}

func (rd *reader) networkRuleSet(no object, n *NetworkRuleSet) {
	const path = "properties.networkRuleSet"
	rd.enumField(no, "defaultAction", path+".defaultAction", &n.DefaultAction, ActionAllow, ActionDeny)
	iv, ok := field(no, "ipRules")
	if !ok {
		return
	}
	arr, ok := iv.([]any)
	if !ok {
		rd.fail(typeError(path+".ipRules", "an array", iv))
		return
	}
	rules := make([]IPRule, 0, len(arr))
	for i, e := range arr {
		ep := path + ".ipRules[" + itoa(i) + "]"
		eo, ok := rd.obj(e, ep)
		if !ok {
			return
		}
		rule := IPRule{Action: ActionAllow}
		rd.enumField(eo, "action", ep+".action", &rule.Action, ActionAllow)
		rd.stringField(eo, "value", ep+".value", &rule.Value)
		rules = append(rules, rule)
	}
	n.IPRules = rules
}

func (rd *reader) policies(po object, p *Policies) {
	const path = "properties.policies"
	statuses := []string{StatusEnabled, StatusDisabled}
	if v, ok := field(po, "quarantinePolicy"); ok {
		if o, ok := rd.obj(v, path+".quarantinePolicy"); ok {
			rd.enumField(o, "status", path+".quarantinePolicy.status", &p.QuarantinePolicy.Status, statuses...)
		}
	}
	if v, ok := field(po, "trustPolicy"); ok {
		if o, ok := rd.obj(v, path+".trustPolicy"); ok {
			rd.enumField(o, "type", path+".trustPolicy.type", &p.TrustPolicy.Type, TrustNotary)
			rd.enumField(o, "status", path+".trustPolicy.status", &p.TrustPolicy.Status, statuses...)
		}
	}
	if v, ok := field(po, "retentionPolicy"); ok {
		if o, ok := rd.obj(v, path+".retentionPolicy"); ok {
			rd.intField(o, "days", path+".retentionPolicy.days", &p.RetentionPolicy.Days)
			rd.enumField(o, "status", path+".retentionPolicy.status", &p.RetentionPolicy.Status, statuses...)
		}
	}
	if rd.version.has(featExportPolicy) {
		if v, ok := field(po, "exportPolicy"); ok {
			if o, ok := rd.obj(v, path+".exportPolicy"); ok {
				rd.enumField(o, "status", path+".exportPolicy.status", &p.ExportPolicy.Status, statuses...)
			}
		}
	}
	if rd.version.has(featSoftDelete) {
		if v, ok := field(po, "softDeletePolicy"); ok {
			if o, ok := rd.obj(v, path+".softDeletePolicy"); ok {
				if _, set := field(o, "retentionDays"); set {
					p.SoftDeletePolicy.RetentionDaysDefaulted = false
				}
				rd.intField(o, "retentionDays", path+".softDeletePolicy.retentionDays", &p.SoftDeletePolicy.RetentionDays)
				rd.enumField(o, "status", path+".softDeletePolicy.status", &p.SoftDeletePolicy.Status, statuses...)
			}
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Tier is the SKU's tier, which ACR reports equal to its name.
func Tier(sku string) string { return sku }

// Shape returns the registry as ARM shows it in api-version v: the resource
// envelope with id, name, type, location, tags, sku and the properties that
// exist in v. Empty ipRules and tags render as [] and {}.
func (r Registry) Shape(id, name string, v APIVersion) map[string]any {
	p := r.Properties
	props := map[string]any{
		"loginServer":       p.LoginServer,
		"creationDate":      p.CreationDate.UTC().Format(time.RFC3339Nano),
		"provisioningState": p.ProvisioningState,
		"adminUserEnabled":  p.AdminUserEnabled,
	}
	rules := make([]map[string]any, 0, len(p.NetworkRuleSet.IPRules))
	for _, ip := range p.NetworkRuleSet.IPRules {
		rules = append(rules, map[string]any{"action": ip.Action, "value": ip.Value})
	}
	props["networkRuleSet"] = map[string]any{"defaultAction": p.NetworkRuleSet.DefaultAction, "ipRules": rules}
	pol := p.Policies
	policies := map[string]any{
		"quarantinePolicy": map[string]any{"status": pol.QuarantinePolicy.Status},
		"trustPolicy":      map[string]any{"type": pol.TrustPolicy.Type, "status": pol.TrustPolicy.Status},
		"retentionPolicy":  retentionShape(pol.RetentionPolicy),
	}
	if v.has(featPublicNetworkAccess) {
		props["publicNetworkAccess"] = p.PublicNetworkAccess
		props["dataEndpointEnabled"] = p.DataEndpointEnabled
		props["dataEndpointHostNames"] = []string{}
		props["privateEndpointConnections"] = []any{}
	}
	if v.has(featBypassOptions) {
		props["networkRuleBypassOptions"] = p.NetworkRuleBypassOptions
		props["zoneRedundancy"] = p.ZoneRedundancy
	}
	if v.has(featExportPolicy) {
		props["anonymousPullEnabled"] = p.AnonymousPullEnabled
		policies["exportPolicy"] = map[string]any{"status": pol.ExportPolicy.Status}
	}
	if v.has(featSoftDelete) {
		sd := map[string]any{"retentionDays": pol.SoftDeletePolicy.RetentionDays, "status": pol.SoftDeletePolicy.Status}
		if !pol.SoftDeletePolicy.LastUpdatedTime.IsZero() {
			sd["lastUpdatedTime"] = pol.SoftDeletePolicy.LastUpdatedTime.UTC().Format(time.RFC3339Nano)
		}
		policies["softDeletePolicy"] = sd
	}
	if v.has(featBypassForTasks) {
		props["networkRuleBypassAllowedForTasks"] = p.NetworkRuleBypassAllowedForTasks
	}
	props["policies"] = policies
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	out := map[string]any{
		"id":         id,
		"name":       name,
		"type":       RegistryType,
		"location":   r.Location,
		"tags":       tags,
		"sku":        map[string]any{"name": r.SKU, "tier": Tier(r.SKU)},
		"properties": props,
	}
	if ident := r.identityShape(); ident != nil && v.has(featIdentity) {
		out["identity"] = ident
	}
	return out
}

func retentionShape(rp RetentionPolicy) map[string]any {
	m := map[string]any{"days": rp.Days, "status": rp.Status}
	if !rp.LastUpdatedTime.IsZero() {
		m["lastUpdatedTime"] = rp.LastUpdatedTime.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// storedProperties is the stored form: the properties plus moat-internal
// members that Shape never shows as properties.
type storedProperties struct {
	Properties
	Identity *Identity `json:"moatIdentity,omitempty"`
}

// MarshalProperties is the JSON moat stores for r.Properties and r.Identity.
func (r Registry) MarshalProperties() ([]byte, error) {
	sp := storedProperties{Properties: r.Properties}
	if !r.Identity.None() {
		sp.Identity = &r.Identity
	}
	return json.Marshal(sp)
}

// UnmarshalStored rebuilds a registry from what the store keeps: its
// location, SKU, properties JSON and tags JSON. Properties missing from an
// older stored document take their defaults.
func UnmarshalStored(location, sku string, properties, tags []byte) (Registry, error) {
	r := Defaults()
	r.Location, r.SKU = location, sku
	// Only a stored true means defaulted (see SoftDeletePolicy).
	r.Properties.Policies.SoftDeletePolicy.RetentionDaysDefaulted = false
	if len(properties) > 0 {
		sp := storedProperties{Properties: r.Properties}
		if err := json.Unmarshal(properties, &sp); err != nil {
			return Registry{}, err
		}
		r.Properties = sp.Properties
		if sp.Identity != nil {
			r.Identity = *sp.Identity
		}
	}
	if r.Properties.NetworkRuleSet.IPRules == nil {
		r.Properties.NetworkRuleSet.IPRules = []IPRule{}
	}
	if len(tags) > 0 {
		if err := json.Unmarshal(tags, &r.Tags); err != nil {
			return Registry{}, err
		}
	}
	return r, nil
}
