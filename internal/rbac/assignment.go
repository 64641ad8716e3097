package rbac

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// RoleAssignmentType is the ARM type of role assignments, and the
// meta.Resource type they are stored under.
const RoleAssignmentType = "Microsoft.Authorization/roleAssignments"

// Assignment is a role assignment: PrincipalID holds the role
// RoleDefinitionID at Scope.
type Assignment struct {
	// Name is the assignment's GUID.
	Name string
	// Scope is where it applies (and below); "/" for the deployment root.
	Scope string
	// RoleDefinitionID is the role's definition id as it was given
	// ("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}").
	RoleDefinitionID string
	PrincipalID      string
	// PrincipalType is ARM's: User, ServicePrincipal, Group, ...
	PrincipalType string
	Description   string
	CreatedOn     time.Time
	UpdatedOn     time.Time
	CreatedBy     string
	UpdatedBy     string
}

// ID is the assignment's ARM id:
// {scope}/providers/Microsoft.Authorization/roleAssignments/{name}.
func (a Assignment) ID() string { return AssignmentID(a.Scope, a.Name) }

// AssignmentID is the id of the assignment name at scope.
func AssignmentID(scope, name string) string {
	return strings.TrimRight(scope, "/") + "/providers/" + RoleAssignmentType + "/" + name
}

// Role is the assignment's role definition; false when it names none.
func (a Assignment) Role() (RoleDefinition, bool) { return Lookup(a.RoleDefinitionID) }

// Allowed is the control-plane decision: whether principalID holds, through
// an assignment at or above scope, a role that allows action.
func Allowed(assignments []Assignment, principalID, action, scope string) bool {
	return allowed(assignments, principalID, scope, func(d RoleDefinition) bool { return d.Allows(action) })
}

// AllowedData is Allowed for a data action.
func AllowedData(assignments []Assignment, principalID, dataAction, scope string) bool {
	return allowed(assignments, principalID, scope, func(d RoleDefinition) bool { return d.AllowsData(dataAction) })
}

func allowed(assignments []Assignment, principalID, scope string, ok func(RoleDefinition) bool) bool {
	if principalID == "" || scope == "" {
		return false
	}
	for _, a := range assignments {
		if !strings.EqualFold(a.PrincipalID, principalID) || !Covers(a.Scope, scope) {
			continue
		}
		if d, found := a.Role(); found && ok(d) {
			return true
		}
	}
	return false
}

// DataPlaneRights is what a principal may do in one registry's data plane.
type DataPlaneRights struct {
	Pull, Push, Delete, Catalog, Sign bool
}

// DataPlane resolves a principal's rights on the registry whose ARM id is
// registryID, from the assignments that cover it.
func DataPlane(assignments []Assignment, principalID, registryID string) DataPlaneRights {
	pull := Allowed(assignments, principalID, ActionPull, registryID)
	return DataPlaneRights{
		Pull:    pull,
		Push:    Allowed(assignments, principalID, ActionPush, registryID),
		Delete:  Allowed(assignments, principalID, ActionDelete, registryID),
		Catalog: pull || AllowedData(assignments, principalID, DataActionCatalog, registryID),
		// Content trust checks the data action, which "*" (Owner,
		// Contributor) does not grant: ACR's table lets only AcrImageSigner sign.
		Sign: AllowedData(assignments, principalID, DataActionTrustedCollectionsWrite, registryID),
	}
}

// storedProperties is the JSON kept in a stored assignment's Properties.
type storedProperties struct {
	RoleDefinitionID string    `json:"roleDefinitionId"`
	PrincipalID      string    `json:"principalId"`
	PrincipalType    string    `json:"principalType"`
	Scope            string    `json:"scope"`
	Description      string    `json:"description,omitempty"`
	CreatedOn        time.Time `json:"createdOn"`
	UpdatedOn        time.Time `json:"updatedOn"`
	CreatedBy        string    `json:"createdBy,omitempty"`
	UpdatedBy        string    `json:"updatedBy,omitempty"`
}

// ToResource is the stored form of a.
func ToResource(a Assignment) (meta.Resource, error) {
	props, err := json.Marshal(storedProperties{
		RoleDefinitionID: a.RoleDefinitionID, PrincipalID: a.PrincipalID, PrincipalType: a.PrincipalType,
		Scope: a.Scope, Description: a.Description, CreatedOn: a.CreatedOn, UpdatedOn: a.UpdatedOn,
		CreatedBy: a.CreatedBy, UpdatedBy: a.UpdatedBy,
	})
	if err != nil {
		return meta.Resource{}, fmt.Errorf("rbac: encoding role assignment %s: %w", a.Name, err)
	}
	return meta.Resource{ID: a.ID(), Type: RoleAssignmentType, Name: a.Name, Properties: props}, nil
}

// FromResource decodes a stored assignment.
func FromResource(r meta.Resource) (Assignment, error) {
	var p storedProperties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		return Assignment{}, fmt.Errorf("rbac: decoding role assignment %s: %w", r.ID, err)
	}
	return Assignment{
		Name: r.Name, Scope: p.Scope, RoleDefinitionID: p.RoleDefinitionID, PrincipalID: p.PrincipalID,
		PrincipalType: p.PrincipalType, Description: p.Description, CreatedOn: p.CreatedOn, UpdatedOn: p.UpdatedOn,
		CreatedBy: p.CreatedBy, UpdatedBy: p.UpdatedBy,
	}, nil
}

// Load reads every stored role assignment. An unreadable record is an
// error, not a silent omission: a lost assignment must not quietly change
// what anyone may do.
func Load(ctx context.Context, store meta.ResourceStore) ([]Assignment, error) {
	res, err := store.ListResources(ctx, "", RoleAssignmentType)
	if err != nil {
		return nil, fmt.Errorf("rbac: listing role assignments: %w", err)
	}
	out := make([]Assignment, 0, len(res))
	for _, r := range res {
		a, err := FromResource(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
