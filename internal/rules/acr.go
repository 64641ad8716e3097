package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf16"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// RegistryType is the resource type of container registries.
const RegistryType = "Microsoft.ContainerRegistry/registries"

const diagnosticSettingsType = "Microsoft.Insights/diagnosticSettings"

// Field paths the rules read.
const (
	fSKUName        = "sku.name"
	fSKUTier        = "sku.tier"
	fAdminUser      = "properties.adminUserEnabled"
	fAnonymousPull  = "properties.anonymousPullEnabled"
	fPublicAccess   = "properties.publicNetworkAccess"
	fDefaultAction  = "properties.networkRuleSet.defaultAction"
	fIPRules        = "properties.networkRuleSet.ipRules"
	fBypass         = "properties.networkRuleBypassOptions"
	fQuarantine     = "properties.policies.quarantinePolicy.status"
	fTrust          = "properties.policies.trustPolicy.status"
	fRetention      = "properties.policies.retentionPolicy.status"
	fSoftDelete     = "properties.policies.softDeletePolicy.status"
	fSoftDeleteDays = "properties.policies.softDeletePolicy.retentionDays"
	fExport         = "properties.policies.exportPolicy.status"
	fCMKIdentity    = "properties.encryption.keyVaultProperties.identity"
)

// isSKU is PSRule for Azure's SKU selector: sku.name or sku.tier equals sku.
func isSKU(t *Target, sku string) verdict {
	return anyOf(equals(t, fSKUName, sku), equals(t, fSKUTier, sku))
}

func isPremium(t *Target, _ *Config) verdict { return isSKU(t, "Premium") }

// networkRestricted: public access disabled or the firewall denies by
// default — the registry is not open to any client.
func networkRestricted(t *Target) verdict {
	return anyOf(equals(t, fPublicAccess, "Disabled"), equals(t, fDefaultAction, "Deny"))
}

// Set returns the rule set, Azure.* rules first, each a new value so
// callers may not disturb each other.
func Set() []*Rule {
	ga := func(ruleSet, pillar string) map[string]string {
		return map[string]string{"release": "GA", "ruleSet": ruleSet, "Azure.WAF/pillar": pillar}
	}
	preview := func(ruleSet, pillar string) map[string]string {
		return map[string]string{"release": "preview", "ruleSet": ruleSet, "Azure.WAF/pillar": pillar}
	}
	moat := map[string]string{"release": "moat", "Azure.WAF/pillar": "Security"}
	return []*Rule{
		{
			Name: "Azure.ACR.AdminUser", Ref: "AZR-000005", Level: Error, Tags: ga("2020_06", "Security"), Type: RegistryType,
			Synopsis:       "Use Entra ID identities instead of the registry admin user.",
			Recommendation: "Set properties.adminUserEnabled to false.",
			Check:          func(t *Target, _ *Config) verdict { return hasDefault(t, fAdminUser, false) },
		},
		{
			Name: "Azure.ACR.MinSku", Ref: "AZR-000006", Level: Warning, Tags: ga("2020_06", "Reliability"), Type: RegistryType,
			Synopsis:       "Use the Premium or Standard SKU for production registries.",
			Recommendation: "Set sku.name to Premium or Standard.",
			Check:          func(t *Target, _ *Config) verdict { return in(t, fSKUName, "Premium", "Standard") },
		},
		{
			Name: "Azure.ACR.Name", Ref: "AZR-000007", Level: Error, Tags: ga("2020_06", "Operational Excellence"), Type: RegistryType,
			Synopsis:       "Registry names must be 5 to 50 letters or digits.",
			Recommendation: "Use a name of 5 to 50 ASCII letters and digits.",
			Check:          checkName,
		},
		{
			Name: "Azure.ACR.Quarantine", Ref: "AZR-000008", Level: Warning, Tags: preview("2020_12", "Security"), Type: RegistryType,
			Synopsis:       "Quarantine new images until they are scanned and marked verified.",
			Recommendation: "Set properties.policies.quarantinePolicy.status to enabled.",
			Check:          func(t *Target, _ *Config) verdict { return equals(t, fQuarantine, "enabled") },
		},
		{
			Name: "Azure.ACR.ContentTrust", Ref: "AZR-000009", Level: Warning, Tags: ga("2020_12", "Security"), Type: RegistryType,
			Synopsis:       "Use container images signed by a trusted publisher.",
			Recommendation: "Set properties.policies.trustPolicy.status to enabled.",
			If: func(t *Target, c *Config) verdict {
				// Content trust cannot be combined with customer-managed keys.
				return allOf(isPremium(t, c), not(exists(t, fCMKIdentity), fCMKIdentity, "the registry uses customer-managed keys"))
			},
			Check: func(t *Target, _ *Config) verdict { return equals(t, fTrust, "enabled") },
		},
		{
			Name: "Azure.ACR.Retention", Ref: "AZR-000010", Level: Warning, Tags: preview("2020_12", "Cost Optimization"), Type: RegistryType,
			Synopsis:       "Use a retention policy to clean up untagged manifests.",
			Recommendation: "Set properties.policies.retentionPolicy.status to enabled.",
			If:             isPremium,
			Check:          func(t *Target, _ *Config) verdict { return equals(t, fRetention, "enabled") },
		},
		{
			Name: "Azure.ACR.SoftDelete", Ref: "AZR-000310", Level: Warning, Tags: preview("2022_09", "Reliability"), Type: RegistryType,
			Synopsis:       "Keep deleted artifacts recoverable with a soft delete policy.",
			Recommendation: "Set properties.policies.softDeletePolicy.status to enabled and set retentionDays.",
			If: func(t *Target, _ *Config) verdict {
				// Soft delete cannot be combined with a retention policy nor
				// with geo-replication.
				return allOf(hasDefault(t, fRetention, "disabled"), noReplications(t))
			},
			Check: func(t *Target, _ *Config) verdict {
				return allOf(equals(t, fSoftDelete, "enabled"), exists(t, fSoftDeleteDays))
			},
		},
		{
			Name: "Azure.ACR.AnonymousAccess", Ref: "AZR-000401", Level: Error, Tags: preview("2023_09", "Security"), Type: RegistryType,
			Synopsis:       "Disable anonymous pull access.",
			Recommendation: "Set properties.anonymousPullEnabled to false.",
			If: func(t *Target, _ *Config) verdict {
				return anyOf(isSKU(t, "Premium"), isSKU(t, "Standard"))
			},
			Check: func(t *Target, _ *Config) verdict { return hasDefault(t, fAnonymousPull, false) },
		},
		{
			Name: "Azure.ACR.Firewall", Ref: "AZR-000402", Level: Error, Tags: ga("2023_09", "Security"), Type: RegistryType,
			Synopsis:       "Limit network access of container registries to trusted clients.",
			Recommendation: "Set properties.publicNetworkAccess to Disabled or properties.networkRuleSet.defaultAction to Deny.",
			If:             isPremium,
			Check:          func(t *Target, _ *Config) verdict { return networkRestricted(t) },
		},
		{
			Name: "Azure.ACR.ExportPolicy", Level: Warning, Tags: ga("2025_09", "Security"), Type: RegistryType,
			Synopsis:       "Disable exports so artifacts cannot leave a private registry by import or transfer.",
			Recommendation: "Set properties.publicNetworkAccess to Disabled and properties.policies.exportPolicy.status to disabled.",
			If:             isPremium,
			Check: func(t *Target, _ *Config) verdict {
				return allOf(equals(t, fPublicAccess, "Disabled"), equals(t, fExport, "disabled"))
			},
		},
		{
			Name: "Azure.ACR.Naming", Level: Warning, Tags: ga("2025_06", "Operational Excellence"), Type: RegistryType,
			Synopsis:       "Registry names should follow the organisation's naming format.",
			Recommendation: "Rename the registry to match configuration AZURE_CONTAINER_REGISTRY_NAME_FORMAT.",
			If: func(_ *Target, c *Config) verdict {
				if re, err := c.NameFormat(); re == nil && err == nil {
					return failed("", "no naming format is configured")
				}
				return passed()
			},
			Check: checkNaming,
		},
		{
			Name: "Azure.ACR.AuditLogs", Alias: "Azure.ACR.Logs", Level: Warning, Tags: ga("2026_06", "Security"), Type: RegistryType,
			Synopsis:       "Send the registry's login and repository events to a log destination.",
			Recommendation: "Deploy a Microsoft.Insights/diagnosticSettings resource scoped to the registry with ContainerRegistryLoginEvents and ContainerRegistryRepositoryEvents (or the audit or allLogs group) enabled.",
			Check:          checkAuditLogs,
		},
		{
			Name: "Moat.ACR.TrustedServicesBypass", Level: Warning, Tags: moat, Type: RegistryType,
			Synopsis:       "A network-restricted registry should not let trusted Azure services bypass its rules unless they need to.",
			Recommendation: "Set properties.networkRuleBypassOptions to None, or suppress the rule for registries that a trusted service must reach.",
			If:             func(t *Target, _ *Config) verdict { return networkRestricted(t) },
			Check:          func(t *Target, _ *Config) verdict { return equals(t, fBypass, "None") },
		},
		{
			Name: "Moat.ACR.IPRuleTooBroad", Level: Error, Tags: moat, Type: RegistryType,
			Synopsis:       "Firewall IP rules must not allow whole swathes of the internet.",
			Recommendation: "Replace broad ranges with the addresses of the clients that need access.",
			If:             hasIPRules,
			Check:          checkIPRules,
		},
		{
			Name: "Moat.ACR.ExportOnPrivateRegistry", Level: Error, Tags: moat, Type: RegistryType,
			Synopsis:       "A registry without public access should also disable exports, or its content can leave by import and transfer.",
			Recommendation: "Set properties.policies.exportPolicy.status to disabled.",
			If:             func(t *Target, _ *Config) verdict { return equals(t, fPublicAccess, "Disabled") },
			Check:          func(t *Target, _ *Config) verdict { return equals(t, fExport, "disabled") },
		},
		{
			Name: "Moat.ACR.AdminUserOnRestrictedRegistry", Level: Error, Tags: moat, Type: RegistryType,
			Synopsis:       "A network-restricted registry should not have the shared admin user enabled.",
			Recommendation: "Set properties.adminUserEnabled to false and grant identities AcrPull/AcrPush.",
			If:             func(t *Target, _ *Config) verdict { return networkRestricted(t) },
			Check:          func(t *Target, _ *Config) verdict { return hasDefault(t, fAdminUser, false) },
		},
		{
			Name: "Moat.ACR.PendingPrivateEndpoint", Level: Warning, Tags: moat, Type: RegistryType,
			Synopsis:       "Private endpoint connections should not be left Pending: approve the ones the registry needs and reject the rest.",
			Recommendation: "Approve or reject each Pending connection (moat acr private-endpoint-connection approve|reject), or deploy it with privateLinkServiceConnectionState.status Approved or Rejected.",
			If:             hasPrivateEndpointConnections,
			Check:          noPendingConnections,
		},
	}
}

// pecType is the child type of a registry's private endpoint connections.
const pecType = RegistryType + "/privateEndpointConnections"

// fPECStatus is a connection's state, relative to the connection.
const fPECStatus = "properties.privateLinkServiceConnectionState.status"

// connectionStates are the connections of a registry: those in its
// properties.privateEndpointConnections (what GET shows, and what a
// template may set inline) and its privateEndpointConnections child
// resources. Each is the status field's value and where it is judged.
func connectionStates(t *Target) (states []FieldValue, names []string, whole verdict) {
	fv := t.Field("properties.privateEndpointConnections")
	switch fv.State {
	case Undetermined:
		return nil, nil, undetermined("properties.privateEndpointConnections", fv.Unknown)
	case Present:
		list, _ := fv.Value.([]any)
		for i, c := range list {
			states = append(states, lookup(c, fPECStatus))
			name := fmt.Sprintf("properties.privateEndpointConnections[%d]", i)
			if n := lookup(c, "name"); n.State == Present {
				if s, ok := n.Value.(string); ok {
					name = s
				}
			}
			names = append(names, name)
		}
	}
	for _, c := range t.Children {
		if !strings.EqualFold(c.Type, pecType) {
			continue
		}
		v := c.Field(fPECStatus)
		if v.State == Present && c.ConditionUnknown != nil {
			v = FieldValue{State: Undetermined, Unknown: c.ConditionUnknown}
		}
		states = append(states, v)
		names = append(names, c.DisplayName())
	}
	return states, names, passed()
}

func hasPrivateEndpointConnections(t *Target, _ *Config) verdict {
	states, _, whole := connectionStates(t)
	if whole.state != pass {
		return whole
	}
	if len(states) == 0 {
		return failed("properties.privateEndpointConnections", "the registry has no private endpoint connections")
	}
	return passed()
}

// noPendingConnections fails for each connection whose status is Pending;
// a connection without a status is judged Pending, as Azure creates it.
func noPendingConnections(t *Target, _ *Config) verdict {
	states, names, whole := connectionStates(t)
	if whole.state != pass {
		return whole
	}
	var vs []verdict
	for i, st := range states {
		switch st.State {
		case Undetermined:
			vs = append(vs, undetermined(fPECStatus, st.Unknown))
		case Missing:
			vs = append(vs, failed(fPECStatus, "private endpoint connection %s has no status: Azure creates it Pending", names[i]))
		default:
			if s, _ := st.Value.(string); strings.EqualFold(s, "Pending") {
				vs = append(vs, failed(fPECStatus, "private endpoint connection %s is Pending", names[i]))
			}
		}
	}
	return allOf(vs...)
}

func checkName(t *Target, _ *Config) verdict {
	fv := t.Field("name")
	if fv.State == Undetermined {
		return undetermined("name", fv.Unknown)
	}
	name, _ := fv.Value.(string)
	// ARM counts length in UTF-16 code units, as .NET strings do.
	n := len(utf16.Encode([]rune(name)))
	var vs []verdict
	if n < 5 || n > 50 {
		vs = append(vs, failed("name", "name %q is %d characters long; want 5 to 50", name, n))
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			vs = append(vs, failed("name", "name %q has %q; want letters and digits only", name, r))
			break
		}
	}
	return allOf(vs...)
}

func checkNaming(t *Target, c *Config) verdict {
	re, err := c.NameFormat()
	if err != nil {
		return failed("name", "%v", err)
	}
	fv := t.Field("name")
	if fv.State == Undetermined {
		return undetermined("name", fv.Unknown)
	}
	name, _ := fv.Value.(string)
	if re.MatchString(name) {
		return passed()
	}
	return failed("name", "name %q does not match the naming format %s", name, re)
}

// requiredLogCategories are the diagnostic log categories that record who
// signed in and what they pushed, pulled or deleted.
var requiredLogCategories = []string{"ContainerRegistryLoginEvents", "ContainerRegistryRepositoryEvents"}

func checkAuditLogs(t *Target, _ *Config) verdict {
	var undecided []verdict
	for _, ds := range t.Extensions {
		v := diagnosticSettingAudits(ds)
		if v.state == pass && ds.ConditionUnknown != nil {
			v = undetermined("", ds.ConditionUnknown)
		}
		if v.state == pass {
			return v
		}
		if v.state == unknown {
			undecided = append(undecided, v)
		}
	}
	for _, ds := range t.UnscopedExtensions {
		// A setting whose scope is unknown (or a registry whose id is) may
		// be this registry's: if it would satisfy the rule, the outcome
		// depends on what the scope turns out to be.
		if diagnosticSettingAudits(ds).state == fail {
			continue
		}
		u := ds.NameUnknown
		if sc := ds.Field("scope"); u == nil && sc.State == Undetermined {
			u = sc.Unknown
		}
		if u == nil {
			u = t.NameUnknown
		}
		if u == nil {
			u = ds.ConditionUnknown
		}
		if u == nil {
			u = &armtemplate.Unknown{Expr: "the scope of diagnostic setting " + ds.DisplayName(), Reason: "it cannot be resolved offline"}
		}
		undecided = append(undecided, undetermined("", u))
	}
	if len(undecided) > 0 {
		return undecided[0]
	}
	return failed("", "no diagnostic setting of %s enables %s (or the audit or allLogs category group)", t.DisplayName(), strings.Join(requiredLogCategories, " and "))
}

// diagnosticSettingAudits passes when the setting enables both audit
// categories, or a category group that contains them.
func diagnosticSettingAudits(ds *Target) verdict {
	fv := ds.Field("properties.logs")
	switch fv.State {
	case Undetermined:
		return undetermined("properties.logs", fv.Unknown)
	case Missing:
		return failed("properties.logs", "no logs")
	}
	logs, _ := fv.Value.([]any)
	found := map[string]bool{}
	var undecided *verdict
	for i, l := range logs {
		en := lookup(l, "enabled")
		if en.State == Undetermined {
			v := undetermined(fmt.Sprintf("properties.logs[%d].enabled", i), en.Unknown)
			undecided = &v
			continue
		}
		if b, _ := en.Value.(bool); !b {
			continue
		}
		for _, key := range []string{"category", "categoryGroup"} {
			cv := lookup(l, key)
			if cv.State == Undetermined {
				v := undetermined(fmt.Sprintf("properties.logs[%d]", i), cv.Unknown)
				undecided = &v
			}
			if s, ok := cv.Value.(string); ok {
				found[strings.ToLower(s)] = true
			}
		}
	}
	if found["audit"] || found["alllogs"] {
		return passed()
	}
	all := true
	for _, c := range requiredLogCategories {
		all = all && found[strings.ToLower(c)]
	}
	if all {
		return passed()
	}
	if undecided != nil {
		return *undecided
	}
	return failed("properties.logs", "diagnostic setting %s does not enable both audit categories", ds.DisplayName())
}

// noReplications fails when the registry has a replication child; one
// whose registry is unknown makes the answer unknown.
func noReplications(t *Target) verdict {
	for _, c := range t.Children {
		if !strings.EqualFold(c.Type, RegistryType+"/replications") {
			continue
		}
		if c.Name == "" || t.Name == "" {
			u := c.NameUnknown
			if u == nil {
				u = t.NameUnknown
			}
			if u != nil {
				return undetermined("", u)
			}
		}
		return failed("", "the registry is geo-replicated (%s)", c.DisplayName())
	}
	return passed()
}

// hasIPRules: an empty list and no list are the same firewall.
func hasIPRules(t *Target, _ *Config) verdict {
	fv := t.Field(fIPRules)
	switch fv.State {
	case Undetermined:
		return undetermined(fIPRules, fv.Unknown)
	case Present:
		if list, ok := fv.Value.([]any); ok && len(list) > 0 {
			return passed()
		}
	}
	return failed(fIPRules, "no IP rules")
}

// checkIPRules fails on a rule that allows everyone (0.0.0.0/0, ::/0) or a
// public range at least as wide as an IPv4 /8 or an IPv6 /16. Values that
// are not addresses are left to validation (ARM rejects them).
func checkIPRules(t *Target, _ *Config) verdict {
	fv := t.Field(fIPRules)
	if fv.State == Undetermined {
		return undetermined(fIPRules, fv.Unknown)
	}
	rules, _ := fv.Value.([]any)
	var vs []verdict
	field := func(i int) string { return fmt.Sprintf("%s[%d].value", fIPRules, i) }
	for i, r := range rules {
		v := lookup(r, "value")
		switch v.State {
		case Undetermined:
			vs = append(vs, undetermined(field(i), v.Unknown))
			continue
		case Missing:
			continue
		}
		s, _ := v.Value.(string)
		if why := tooBroad(s); why != "" {
			vs = append(vs, failed(field(i), "ipRules[%d] %s %s", i, s, why))
		}
	}
	return allOf(vs...)
}

// nonPublic are ranges that are not reachable from the internet: a broad
// rule inside them is not an exposure.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

func tooBroad(s string) string {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "" // one address, or not an address at all (validation's job)
	}
	p = p.Masked()
	if p.Bits() == 0 {
		return "allows every address"
	}
	limit := 8
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		limit = 16
	}
	if p.Bits() > limit {
		return ""
	}
	for _, np := range nonPublic {
		if np.Bits() <= p.Bits() && np.Contains(p.Addr()) {
			return ""
		}
	}
	return fmt.Sprintf("allows a public range of 2^%d addresses", p.Addr().BitLen()-p.Bits())
}
