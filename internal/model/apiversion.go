package model

import (
	"slices"
	"strings"
)

// APIVersions are the Microsoft.ContainerRegistry api-versions moat accepts
// for registries, oldest first: every published stable and preview version
// of the resource provider from 2019-05-01 on (from Azure/azure-rest-api-specs,
// specification/containerregistry/resource-manager/Microsoft.ContainerRegistry).
var APIVersions = []string{
	"2019-05-01",
	"2019-12-01-preview",
	"2020-11-01-preview",
	"2021-06-01-preview",
	"2021-08-01-preview",
	"2021-09-01",
	"2021-12-01-preview",
	"2022-02-01-preview",
	"2022-12-01",
	"2023-01-01-preview",
	"2023-06-01-preview",
	"2023-07-01",
	"2023-08-01-preview",
	"2023-11-01-preview",
	"2024-11-01-preview",
	"2025-03-01-preview",
	"2025-04-01",
	"2025-05-01-preview",
	"2025-06-01-preview",
	"2025-11-01",
}

// APIVersion is a supported api-version; its zero value is not one.
type APIVersion struct {
	s string
}

// ParseAPIVersion returns the supported version named v (exactly, as ARM
// compares them) and whether it is supported.
func ParseAPIVersion(v string) (APIVersion, bool) {
	if slices.Contains(APIVersions, v) {
		return APIVersion{s: v}, true
	}
	return APIVersion{}, false
}

// Latest is the newest supported version; moat stores registries in its shape.
func Latest() APIVersion { return APIVersion{s: APIVersions[len(APIVersions)-1]} }

// LatestPreview is the newest preview api-version: the shape that shows
// every property moat keeps, preview-only policies included.
func LatestPreview() APIVersion {
	for i := len(APIVersions) - 1; i >= 0; i-- {
		if v := (APIVersion{s: APIVersions[i]}); v.preview() {
			return v
		}
	}
	return Latest()
}

func (v APIVersion) String() string { return v.s }

// date is the version's date part; versions of one day order preview first.
func (v APIVersion) date() string { return v.s[:10] }

func (v APIVersion) preview() bool { return strings.HasSuffix(v.s, "-preview") }

// has reports whether property p existed in the version.
func (v APIVersion) has(p feature) bool {
	if v.s == "" {
		return true
	}
	if v.date() < p.since {
		return false
	}
	return !p.previewOnly || v.preview()
}

// feature is when a registry property appeared: the date of the first
// version that has it, and whether only preview versions carry it.
type feature struct {
	since       string
	previewOnly bool
}

// Properties by the version that introduced them. Properties of 2019-05-01
// (adminUserEnabled, networkRuleSet, quarantine, trust and retention
// policies) are in every supported version.
var (
	featPublicNetworkAccess = feature{since: "2019-12-01"} // with privateEndpointConnections, dataEndpointEnabled
	featIdentity            = feature{since: "2019-12-01"} // the top-level identity block (with encryption)
	featBypassOptions       = feature{since: "2020-11-01"} // networkRuleBypassOptions, zoneRedundancy
	featExportPolicy        = feature{since: "2021-06-01"} // policies.exportPolicy, anonymousPullEnabled
	featSoftDelete          = feature{since: "2022-02-01", previewOnly: true}
	featBypassForTasks      = feature{since: "2025-03-01"} // networkRuleBypassAllowedForTasks
)
