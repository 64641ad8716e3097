package arm

import (
	"errors"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/storage/meta"
)

type operation struct {
	Name    string           `json:"name"`
	Display operationDisplay `json:"display"`
	Origin  string           `json:"origin"`
}

type operationDisplay struct {
	Provider    string `json:"provider"`
	Resource    string `json:"resource"`
	Operation   string `json:"operation"`
	Description string `json:"description"`
}

var operations = []operation{
	op("registries/read", "Registry", "Get or list registries", "Gets the properties of a container registry or lists them."),
	op("registries/write", "Registry", "Create or update a registry", "Creates or updates a container registry."),
	op("registries/delete", "Registry", "Delete a registry", "Deletes a container registry."),
	op("registries/listUsages/read", "Registry", "List usages", "Lists the quota usages of a container registry."),
	op("checkNameAvailability/read", "Registry name", "Check name availability", "Checks whether a registry name is available."),
	op("operations/read", "Operation", "List operations", "Lists the operations of Microsoft.ContainerRegistry."),
}

func op(name, resource, action, description string) operation {
	return operation{Name: providerNS + "/" + name, Origin: "user,system",
		Display: operationDisplay{Provider: "Microsoft Container Registry (moat)", Resource: resource, Operation: action, Description: description}}
}

func (h *handler) operations(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"value": operations})
	return nil
}

// checkName answers checkNameAvailability for registries: reason Invalid for
// a malformed name, AlreadyExists for a taken one.
func (h *handler) checkName(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	if !strings.EqualFold(in.Type, model.RegistryType) {
		return &apiError{status: http.StatusBadRequest, code: "InvalidResourceType", target: "type",
			message: "type " + quote(in.Type) + " is not supported: only " + model.RegistryType}
	}
	out := map[string]any{"nameAvailable": true}
	if err := model.ValidateName(in.Name); err != nil {
		var me *model.Error
		msg := err.Error()
		if errors.As(err, &me) {
			msg = me.Message
		}
		out = map[string]any{"nameAvailable": false, "reason": "Invalid", "message": msg}
	} else if _, err := h.o.Meta.GetRegistry(r.Context(), in.Name); err == nil {
		out = map[string]any{"nameAvailable": false, "reason": "AlreadyExists",
			"message": "The registry " + in.Name + " is already in use."}
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func quote(s string) string { return "'" + s + "'" }

// usages answers listUsages: the quotas moat enforces and their use.
func (h *handler) usages(w http.ResponseWriter, r *http.Request, rt route) error {
	_, reg, err := h.load(r.Context(), rt)
	if err != nil {
		return err
	}
	quota := h.o.IPRuleQuota
	if quota <= 0 {
		quota = model.DefaultIPRuleQuota
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": []map[string]any{
		{"name": "IPRules", "limit": quota, "currentValue": len(reg.Properties.NetworkRuleSet.IPRules), "unit": "Count"},
		{"name": "PrivateEndpointConnections", "limit": 200, "currentValue": 0, "unit": "Count"},
	}})
	return nil
}
