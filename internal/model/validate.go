package model

import (
	"fmt"
	"net/netip"
	"strings"
)

// Error codes of Validate and ValidateName. Where ACR's own code is known it
// is used; the others say what is wrong.
const (
	CodeInvalidRegistryName                      = "InvalidRegistryName"
	CodeRegistryNameInUse                        = "AlreadyInUse"
	CodeLocationRequired                         = "LocationRequired"
	CodeSKURequired                              = "MissingSku"
	CodeDisablingPublicNetworkAccessNotSupported = "DisablingPublicNetworkAccessNotSupported"
	CodeNetworkRulesNotSupported                 = "NetworkRuleSetNotSupported"
	CodeIPRuleQuotaExceeded                      = "IpRuleQuotaExceeded"
	CodeInvalidIPRule                            = "InvalidIpRule"
	CodeExportPolicyNotSupported                 = "ExportPolicyNotSupported"
	CodeExportPolicyRequiresPrivateAccess        = "ExportPolicyRequiresPublicNetworkAccessDisabled"
	CodeExportPipelinesExist                     = "ExportPipelinesExist"
	CodeBadRequest                               = "BadRequest"
	CodeExportsDisabled                          = "ExportPolicyDisabled"
	CodeInvalidRetentionDays                     = "InvalidRetentionDays"
	CodeInvalidSoftDeleteRetentionDays           = "InvalidSoftDeleteRetentionDays"
	CodeDataEndpointNotSupported                 = "DataEndpointNotSupported"
	CodeAnonymousPullNotSupported                = "AnonymousPullNotSupported"
)

// DefaultIPRuleQuota is ACR's limit of IP rules per registry.
const DefaultIPRuleQuota = 200

// ValidationContext is what Validate needs beyond the two registries.
type ValidationContext struct {
	// IPRuleQuota is the most IP rules a registry may have; 0 means
	// DefaultIPRuleQuota.
	IPRuleQuota int
	// HasExportPipelines is true when the registry has export pipelines.
	HasExportPipelines bool
}

// ValidateName checks a registry name: 5 to 50 ASCII letters and digits.
// Uniqueness is the caller's (it needs the store); CodeRegistryNameInUse is
// the code to answer with.
func ValidateName(name string) error {
	ok := len(name) >= 5 && len(name) <= 50
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if !ok {
		return errorf(statusBadRequest, CodeInvalidRegistryName, "name",
			"registry name %q is invalid: it must be 5 to 50 letters and digits", name)
	}
	return nil
}

// Validate checks the registry next, which replaces old (nil when next is
// being created), against the rules of DESIGN.md §2, and returns the first
// violation as an *Error, or nil.
func Validate(old *Registry, next Registry, vc ValidationContext) error {
	p := next.Properties
	premium := next.SKU == SKUPremium
	if next.Location == "" {
		return errorf(statusBadRequest, CodeLocationRequired, "location", "location is required")
	}
	if next.SKU == "" {
		return errorf(statusBadRequest, CodeSKURequired, "sku.name", "sku.name is required: one of Basic, Standard, Premium")
	}
	if p.PublicNetworkAccess == Disabled && !premium {
		return errorf(statusBadRequest, CodeDisablingPublicNetworkAccessNotSupported, "properties.publicNetworkAccess",
			"properties.publicNetworkAccess %q is not supported on the %s SKU: disabling public network access needs Premium", Disabled, next.SKU)
	}
	if !premium {
		if p.NetworkRuleSet.DefaultAction == ActionDeny {
			return errorf(statusBadRequest, CodeNetworkRulesNotSupported, "properties.networkRuleSet.defaultAction",
				"properties.networkRuleSet.defaultAction %q is not supported on the %s SKU: network rules need Premium", ActionDeny, next.SKU)
		}
		if n := len(p.NetworkRuleSet.IPRules); n > 0 {
			return errorf(statusBadRequest, CodeNetworkRulesNotSupported, "properties.networkRuleSet.ipRules",
				"properties.networkRuleSet.ipRules (%d rules) are not supported on the %s SKU: network rules need Premium", n, next.SKU)
		}
		// Dedicated data endpoints are a Premium feature in ACR.
		if p.DataEndpointEnabled {
			return errorf(statusBadRequest, CodeDataEndpointNotSupported, "properties.dataEndpointEnabled",
				"properties.dataEndpointEnabled true is not supported on the %s SKU: dedicated data endpoints need Premium", next.SKU)
		}
		if p.AnonymousPullEnabled && next.SKU == SKUBasic {
			return errorf(statusBadRequest, CodeAnonymousPullNotSupported, "properties.anonymousPullEnabled",
				"properties.anonymousPullEnabled true is not supported on the Basic SKU: anonymous pull needs Standard or Premium")
		}
	}
	quota := vc.IPRuleQuota
	if quota <= 0 {
		quota = DefaultIPRuleQuota
	}
	if n := len(p.NetworkRuleSet.IPRules); n > quota {
		return errorf(statusBadRequest, CodeIPRuleQuotaExceeded, "properties.networkRuleSet.ipRules",
			"properties.networkRuleSet.ipRules has %d rules, more than the quota of %d", n, quota)
	}
	for i, r := range p.NetworkRuleSet.IPRules {
		if !validIPOrCIDR(r.Value) {
			path := fmt.Sprintf("properties.networkRuleSet.ipRules[%d].value", i)
			return errorf(statusBadRequest, CodeInvalidIPRule, path, "%s %q is not an IPv4/IPv6 address or CIDR", path, r.Value)
		}
	}
	if d := p.Policies.RetentionPolicy.Days; d < 0 || d > 365 {
		return errorf(statusBadRequest, CodeInvalidRetentionDays, "properties.policies.retentionPolicy.days",
			"properties.policies.retentionPolicy.days %d is outside 0 to 365", d)
	}
	// ACR keeps soft-deleted artifacts 1 to 90 days (default 7).
	if d := p.Policies.SoftDeletePolicy.RetentionDays; d < 1 || d > 90 {
		return errorf(statusBadRequest, CodeInvalidSoftDeleteRetentionDays, "properties.policies.softDeletePolicy.retentionDays",
			"properties.policies.softDeletePolicy.retentionDays %d is outside 1 to 90", d)
	}
	if err := validateExport(old, next, vc); err != nil {
		return err
	}
	return nil
}

func validateExport(old *Registry, next Registry, vc ValidationContext) error {
	const path = "properties.policies.exportPolicy.status"
	exportOff := next.Properties.Policies.ExportPolicy.Status == StatusDisabled
	wasOff := old != nil && old.Properties.Policies.ExportPolicy.Status == StatusDisabled
	changed := old != nil && old.Properties.Policies.ExportPolicy.Status != next.Properties.Policies.ExportPolicy.Status
	if changed && vc.HasExportPipelines {
		return errorf(statusConflict, CodeExportPipelinesExist, path,
			"%s cannot change from %q to %q while the registry has export pipelines: delete the pipelines first",
			path, old.Properties.Policies.ExportPolicy.Status, next.Properties.Policies.ExportPolicy.Status)
	}
	if !exportOff {
		return nil
	}
	if next.SKU != SKUPremium {
		return errorf(statusBadRequest, CodeExportPolicyNotSupported, path,
			"%s %q is not supported on the %s SKU: the export policy needs Premium", path, StatusDisabled, next.SKU)
	}
	if next.Properties.PublicNetworkAccess == Enabled {
		if wasOff {
			return errorf(statusBadRequest, CodeBadRequest, "properties.publicNetworkAccess",
				"properties.publicNetworkAccess %q: enabling public network access is not supported while exports are disabled (%s is %q)",
				Enabled, path, StatusDisabled)
		}
		return errorf(statusBadRequest, CodeExportPolicyRequiresPrivateAccess, path,
			"%s %q needs properties.publicNetworkAccess %q (it is %q); both may change in one request",
			path, StatusDisabled, Disabled, Enabled)
	}
	return nil
}

// ValidateExportPipelineCreate checks that an export pipeline may be created
// on reg: not while its exports are disabled.
func ValidateExportPipelineCreate(registryName string, reg Registry) error {
	if reg.Properties.Policies.ExportPolicy.Status == StatusDisabled {
		return errorf(statusBadRequest, CodeExportsDisabled, "properties.policies.exportPolicy.status",
			"registry %q has exports disabled (properties.policies.exportPolicy.status is %q): export pipelines cannot be created",
			registryName, StatusDisabled)
	}
	return nil
}

// validIPOrCIDR accepts an IPv4 or IPv6 address or a CIDR prefix of one.
// ACR's own rules are IPv4 only; moat accepts IPv6 too (DESIGN.md §2).
func validIPOrCIDR(s string) bool {
	if strings.TrimSpace(s) != s || s == "" {
		return false
	}
	if strings.Contains(s, "/") {
		_, err := netip.ParsePrefix(s)
		return err == nil
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}
