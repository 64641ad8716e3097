package netrule

import "strings"

// TrustedService is the kind of service a caller was recognised as, for the
// trusted-services bypass (DESIGN.md §3). The identity layer sets it from
// the caller's token: ClassifyResource for managed identities, the scanner
// principal for DefenderForCloud, moat's own import for RegistryImport.
type TrustedService uint8

// The catalogue of DESIGN.md §3 (seed 001). AppService is listed so that a
// caller recognised as App Service is named in decisions; it never bypasses.
const (
	None TrustedService = iota
	ContainerInstances
	DefenderForCloud
	RegistryTasks
	MachineLearning
	RegistryImport
	AppService
)

// ServiceInfo is one row of the trusted-services catalogue.
type ServiceInfo struct {
	Service TrustedService
	// Name is the service's display name.
	Name string
	// ResourceType is the ARM type of the resource whose managed identity
	// the service uses; empty when the caller is not a managed identity
	// (the Defender scanner principal, moat's own import).
	ResourceType string
	// Trusted is false for services that never bypass the network rules.
	Trusted bool
	// RBACRequired is true when the caller still needs an RBAC role after
	// the network bypass; RBAC says whose role and which.
	RBACRequired bool
	RBAC         string
}

// TrustedServices is the catalogue, in the order of DESIGN.md §3; Info
// looks a service up. Decide reads its own copy, made at init, so changing
// this slice changes no decision.
var TrustedServices = []ServiceInfo{
	{ContainerInstances, "Container Instances", "Microsoft.ContainerInstance/containerGroups", true, true,
		"the container group's system- or user-assigned managed identity needs a role on the registry (e.g. AcrPull)"},
	{DefenderForCloud, "Defender for Cloud", "", true, false,
		"none: the built-in scanner principal pulls read-only without a role assignment"},
	{RegistryTasks, "Registry Tasks", "Microsoft.ContainerRegistry/registries/tasks", true, true,
		"the task's managed identity needs a role on the registry; the bypass also needs networkRuleBypassAllowedForTasks"},
	{MachineLearning, "Machine Learning", "Microsoft.MachineLearningServices/workspaces", true, true,
		"the workspace's managed identity needs a role on the registry"},
	{RegistryImport, "Registry Import", "", true, true,
		"the importing caller's rights on the source and target registries"},
	{AppService, "App Service", "Microsoft.Web/sites", false, true,
		"never trusted: App Service identities go through the network rules like any client"},
}

// Info returns the catalogue row of s, and false for None or an unknown
// value.
func Info(s TrustedService) (ServiceInfo, bool) {
	for _, si := range TrustedServices {
		if si.Service == s {
			return si, true
		}
	}
	return ServiceInfo{}, false
}

// String returns the service's display name, "none" for None.
func (s TrustedService) String() string {
	if si, ok := Info(s); ok {
		return si.Name
	}
	if s == None {
		return "none"
	}
	return "unknown"
}

// ClassifyResource maps the resource id a managed-identity token names
// (its xms_mirid) to the service the identity belongs to, or None. It
// reads ARM resource ids case-insensitively and accepts only these shapes;
// anything else, including user-assigned identities
// (Microsoft.ManagedIdentity/userAssignedIdentities, which name no service
// instance), extension resources and malformed ids, is None:
//
//	…/providers/Microsoft.ContainerInstance/containerGroups/{g}
//	…/providers/Microsoft.MachineLearningServices/workspaces/{w}[/computes/{c}]
//	…/providers/Microsoft.ContainerRegistry/registries/{r}/tasks/{t}
//	…/providers/Microsoft.Web/sites/{s}[/slots/{slot}]
//
// where … is /subscriptions/{sub}/resourceGroups/{rg}.
func ClassifyResource(resourceID string) TrustedService {
	seg := strings.Split(resourceID, "/")
	// "", "subscriptions", sub, "resourceGroups", rg, "providers", ns, type, name, …
	if len(seg) < 9 || seg[0] != "" ||
		!strings.EqualFold(seg[1], "subscriptions") ||
		!strings.EqualFold(seg[3], "resourceGroups") ||
		!strings.EqualFold(seg[5], "providers") {
		return None
	}
	for _, s := range seg[1:] {
		if s == "" {
			return None
		}
	}
	ns, typ, rest := seg[6], seg[7], seg[9:] // rest: child type/name pairs
	is := func(n, t string) bool { return strings.EqualFold(ns, n) && strings.EqualFold(typ, t) }
	child := func(t string) bool { return len(rest) == 2 && strings.EqualFold(rest[0], t) }
	switch {
	case is("Microsoft.ContainerInstance", "containerGroups") && len(rest) == 0:
		return ContainerInstances
	case is("Microsoft.MachineLearningServices", "workspaces") && (len(rest) == 0 || child("computes")):
		return MachineLearning
	case is("Microsoft.ContainerRegistry", "registries") && child("tasks"):
		return RegistryTasks
	case is("Microsoft.Web", "sites") && (len(rest) == 0 || child("slots")):
		return AppService
	}
	return None
}
