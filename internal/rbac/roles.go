package rbac

import (
	"strings"
)

// Permission is one permissions entry of a role definition.
type Permission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// RoleDefinition is a built-in role.
type RoleDefinition struct {
	// ID is the role definition's GUID (its ARM name).
	ID          string
	Name        string
	Description string
	Permissions []Permission
}

// Role definition ids of the built-in roles.
const (
	OwnerID              = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	ContributorID        = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	ReaderID             = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	AcrPullID            = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
	AcrPushID            = "8311e382-0749-4cb8-b61a-304f252e45ec"
	AcrDeleteID          = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
	AcrImageSignerID     = "6cef56e8-d556-48e5-a04f-b8e64114680f"
	DataImporterReaderID = "577a9874-89fd-4f24-9dbd-b5034d0ad23a"
)

// ARM actions of the container registry's data plane and of role
// management.
const (
	ActionPull           = "Microsoft.ContainerRegistry/registries/pull/read"
	ActionPush           = "Microsoft.ContainerRegistry/registries/push/write"
	ActionDelete         = "Microsoft.ContainerRegistry/registries/artifacts/delete"
	ActionSign           = "Microsoft.ContainerRegistry/registries/sign/write"
	ActionImportImage    = "Microsoft.ContainerRegistry/registries/importImage/action"
	ActionRegistryRead   = "Microsoft.ContainerRegistry/registries/read"
	ActionRegistryWrite  = "Microsoft.ContainerRegistry/registries/write"
	ActionRegistryDelete = "Microsoft.ContainerRegistry/registries/delete"
	DataActionCatalog    = "Microsoft.ContainerRegistry/registries/catalog/read"
	// DataActionTrustedCollectionsWrite is signing (content trust).
	DataActionTrustedCollectionsWrite = "Microsoft.ContainerRegistry/registries/trustedCollections/write"

	ActionRoleAssignmentRead   = "Microsoft.Authorization/roleAssignments/read"
	ActionRoleAssignmentWrite  = "Microsoft.Authorization/roleAssignments/write"
	ActionRoleAssignmentDelete = "Microsoft.Authorization/roleAssignments/delete"
)

// builtIn are the built-in roles, with the permissions Azure publishes for
// them.
var builtIn = []RoleDefinition{
	{ID: OwnerID, Name: "Owner",
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Permissions: []Permission{{Actions: []string{"*"}}}},
	{ID: ContributorID, Name: "Contributor",
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
		Permissions: []Permission{{Actions: []string{"*"}, NotActions: []string{
			"Microsoft.Authorization/*/Delete",
			"Microsoft.Authorization/*/Write",
			"Microsoft.Authorization/elevateAccess/Action",
			"Microsoft.Blueprint/blueprintAssignments/write",
			"Microsoft.Blueprint/blueprintAssignments/delete",
			"Microsoft.Compute/galleries/share/action",
			"Microsoft.Purview/consents/write",
			"Microsoft.Purview/consents/delete",
			"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
			"Microsoft.Subscription/cancel/action",
			"Microsoft.Subscription/enable/action",
		}}}},
	{ID: ReaderID, Name: "Reader",
		Description: "View all resources, but does not allow you to make any changes.",
		Permissions: []Permission{{Actions: []string{"*/read"}}}},
	{ID: AcrPullID, Name: "AcrPull", Description: "acr pull",
		Permissions: []Permission{{Actions: []string{ActionPull}}}},
	{ID: AcrPushID, Name: "AcrPush", Description: "acr push",
		Permissions: []Permission{{Actions: []string{ActionPull, ActionPush}}}},
	{ID: AcrDeleteID, Name: "AcrDelete", Description: "acr delete",
		Permissions: []Permission{{Actions: []string{ActionDelete}}}},
	{ID: AcrImageSignerID, Name: "AcrImageSigner", Description: "acr image signer",
		Permissions: []Permission{{Actions: []string{ActionSign},
			DataActions: []string{DataActionTrustedCollectionsWrite}}}},
	{ID: DataImporterReaderID, Name: "Container Registry Data Importer and Data Reader",
		Description: "Provides the ability to import images into a registry through the registry import operation. " +
			"Provides the ability to list repositories, view images and tags, get manifests, and pull images. " +
			"Does not provide permissions for importing images through configuring registry transfer pipelines such as import and export pipelines. " +
			"Does not provide permissions for importing through configuring Artifact Cache or Sync rules.",
		Permissions: []Permission{{
			Actions: []string{ActionImportImage, ActionRegistryRead, ActionPull},
			DataActions: []string{
				"Microsoft.ContainerRegistry/registries/repositories/content/read",
				"Microsoft.ContainerRegistry/registries/repositories/metadata/read",
				DataActionCatalog,
			},
		}}},
}

// BuiltIn returns the built-in role definitions, in a fixed order. The
// slices are shared: callers must not modify them.
func BuiltIn() []RoleDefinition { return builtIn }

// roleDefinitionsSegment is what precedes a role definition GUID in its id.
const roleDefinitionsSegment = "/providers/microsoft.authorization/roledefinitions/"

// Lookup finds a built-in role by GUID, by role definition id
// ("[{scope}]/providers/Microsoft.Authorization/roleDefinitions/{guid}") or
// by role name, case-insensitively.
func Lookup(ref string) (RoleDefinition, bool) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return RoleDefinition{}, false
	}
	if i := strings.LastIndex(strings.ToLower(ref), roleDefinitionsSegment); i >= 0 {
		return lookupID(ref[i+len(roleDefinitionsSegment):])
	}
	if d, ok := lookupID(ref); ok {
		return d, true
	}
	for _, d := range builtIn {
		if strings.EqualFold(d.Name, ref) {
			return d, true
		}
	}
	return RoleDefinition{}, false
}

func lookupID(id string) (RoleDefinition, bool) {
	for _, d := range builtIn {
		if strings.EqualFold(d.ID, id) {
			return d, true
		}
	}
	return RoleDefinition{}, false
}

// DefinitionID is the role definition id of guid as ARM spells it under
// scope ("" or "/" for the tenant-wide form).
func DefinitionID(scope, guid string) string {
	scope = strings.TrimRight(scope, "/")
	return scope + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

// MatchAction reports whether action matches pattern, ARM-style: case
// insensitive, '*' matching any run of characters.
func MatchAction(pattern, action string) bool {
	return glob(strings.ToLower(pattern), strings.ToLower(action))
}

// glob matches p against s where '*' in p matches any run of bytes.
func glob(p, s string) bool {
	// Iterative matching with one backtrack point: linear enough for the
	// short patterns of role definitions, and never exponential.
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case i < len(p) && p[i] == s[j]:
			i++
			j++
		case star >= 0:
			i = star + 1
			mark++
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// Allows reports whether the role allows the control-plane action.
func (d RoleDefinition) Allows(action string) bool {
	for _, p := range d.Permissions {
		if matchAny(p.Actions, action) && !matchAny(p.NotActions, action) {
			return true
		}
	}
	return false
}

// AllowsData reports whether the role allows the data action.
func (d RoleDefinition) AllowsData(action string) bool {
	for _, p := range d.Permissions {
		if matchAny(p.DataActions, action) && !matchAny(p.NotDataActions, action) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, action string) bool {
	if action == "" {
		return false
	}
	for _, p := range patterns {
		if MatchAction(p, action) {
			return true
		}
	}
	return false
}
