package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const groupType = "Microsoft.Resources/resourceGroups"

func groupID(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }

type groupJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

func groupShape(res meta.Resource) (groupJSON, error) {
	g := groupJSON{ID: res.ID, Name: res.Name, Type: groupType, Location: res.Location, Tags: map[string]string{}}
	g.Properties.ProvisioningState = "Succeeded"
	if len(res.Tags) > 0 {
		if err := json.Unmarshal(res.Tags, &g.Tags); err != nil {
			return groupJSON{}, fmt.Errorf("stored tags of %s: %w", res.ID, err)
		}
	}
	return g, nil
}

func groupNotFound(rg string) error {
	return newError(http.StatusNotFound, "ResourceGroupNotFound", "resource group '%s' could not be found", rg)
}

func (h *handler) group(w http.ResponseWriter, r *http.Request, rt route) {
	var err error
	switch r.Method {
	case http.MethodPut:
		err = h.putGroup(w, r, rt)
	case http.MethodPatch:
		err = h.patchGroup(w, r, rt)
	case http.MethodGet, http.MethodHead:
		err = h.getGroup(w, r, rt)
	case http.MethodDelete:
		err = h.deleteGroup(w, r, rt)
	default:
		h.methodNotAllowed(w, r, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodHead, http.MethodDelete)
		return
	}
	if err != nil {
		if r.Method == http.MethodHead {
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusNotFound {
				w.WriteHeader(http.StatusNotFound)
				return
			}
		}
		h.writeError(w, r, err)
	}
}

func validGroupName(rg string) bool {
	if len(rg) == 0 || len(rg) > 90 || strings.HasSuffix(rg, ".") {
		return false
	}
	for _, c := range rg {
		switch {
		case c == '-', c == '_', c == '.', c == '(', c == ')':
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		default:
			return false
		}
	}
	return true
}

func (h *handler) putGroup(w http.ResponseWriter, r *http.Request, rt route) error {
	if !validGroupName(rt.rg) {
		return &apiError{status: http.StatusBadRequest, code: "InvalidResourceGroupName", target: "name",
			message: fmt.Sprintf("resource group name %q is invalid: 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'", rt.rg)}
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	if in.Location == "" {
		return &apiError{status: http.StatusBadRequest, code: "LocationRequired", target: "location", message: "location is required"}
	}
	id := groupID(rt.sub, rt.rg)
	var tags []byte
	if in.Tags != nil {
		if tags, err = json.Marshal(in.Tags); err != nil {
			return fmt.Errorf("encoding tags: %w", err)
		}
	}
	status, name := http.StatusCreated, rt.rg
	old, err := h.o.Meta.GetResource(r.Context(), id)
	switch {
	case err == nil:
		// ARM keeps the name as first created; the stored id keeps it too.
		status, name = http.StatusOK, old.Name
		if !strings.EqualFold(old.Location, in.Location) {
			return &apiError{status: http.StatusConflict, code: "InvalidResourceGroupLocation", target: "location",
				message: fmt.Sprintf("resource group '%s' already exists in location '%s'; it cannot move to '%s'", rt.rg, old.Location, in.Location)}
		}
	case !errors.Is(err, meta.ErrNotFound):
		return err
	}
	res, err := h.o.Meta.PutResource(r.Context(), meta.Resource{ID: id, Type: groupType, Name: name, Location: in.Location, Tags: tags})
	if err != nil {
		return err
	}
	g, err := groupShape(res)
	if err != nil {
		return err
	}
	writeJSON(w, status, g)
	return nil
}

// patchGroup is ARM's resource group update (armresources'
// ResourceGroupsClient.Update): what the body names changes, the rest
// stays. Tags given replace the group's tags as a whole ({} clears them);
// a location, when given, must be the group's own (a group cannot move).
func (h *handler) patchGroup(w http.ResponseWriter, r *http.Request, rt route) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Location *string           `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	id := groupID(rt.sub, rt.rg)
	old, err := h.o.Meta.GetResource(r.Context(), id)
	if errors.Is(err, meta.ErrNotFound) {
		return groupNotFound(rt.rg)
	}
	if err != nil {
		return err
	}
	if in.Location != nil && !strings.EqualFold(old.Location, *in.Location) {
		return &apiError{status: http.StatusConflict, code: "InvalidResourceGroupLocation", target: "location",
			message: fmt.Sprintf("resource group '%s' is in location '%s'; it cannot move to '%s'", rt.rg, old.Location, *in.Location)}
	}
	if in.Tags != nil {
		if old.Tags, err = json.Marshal(in.Tags); err != nil {
			return fmt.Errorf("encoding tags: %w", err)
		}
	}
	// old carries its version: a change made meanwhile is not overwritten.
	res, err := h.o.Meta.PutResource(r.Context(), old)
	if errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotFound) {
		return newError(http.StatusConflict, "Conflict", "resource group '%s' changed while it was being updated; retry", rt.rg)
	}
	if err != nil {
		return err
	}
	g, err := groupShape(res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (h *handler) getGroup(w http.ResponseWriter, r *http.Request, rt route) error {
	res, err := h.o.Meta.GetResource(r.Context(), groupID(rt.sub, rt.rg))
	if errors.Is(err, meta.ErrNotFound) {
		return groupNotFound(rt.rg)
	}
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	g, err := groupShape(res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

// deleteGroup deletes the group's registries first (each is announced), then
// the group and the resources stored below it.
func (h *handler) deleteGroup(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	id := groupID(rt.sub, rt.rg)
	if _, err := h.o.Meta.GetResource(ctx, id); errors.Is(err, meta.ErrNotFound) {
		return groupNotFound(rt.rg)
	} else if err != nil {
		return err
	}
	regs, err := h.registriesUnder(ctx, strings.ToLower(id)+"/")
	if err != nil {
		return err
	}
	for _, reg := range regs {
		if err := h.o.Meta.DeleteRegistry(ctx, reg.Name); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if err := h.deleteRegistryIdentity(ctx, reg.ResourceID); err != nil {
			return err
		}
		h.changed(ctx, reg.Name)
	}
	if err := h.o.Meta.DeleteResource(ctx, id); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) listGroups(w http.ResponseWriter, r *http.Request, rt route) error {
	res, err := h.o.Meta.ListResources(r.Context(), "/subscriptions/"+rt.sub, groupType)
	if err != nil {
		return err
	}
	items := make([]any, 0, len(res))
	for _, g := range res {
		if ok, err := h.may(r, actionGroupRead, g.ID); err != nil {
			return err
		} else if !ok {
			continue
		}
		gj, err := groupShape(g)
		if err != nil {
			return err
		}
		items = append(items, gj)
	}
	h.writePage(w, r, items)
	return nil
}

// decodeStrict reads a small JSON body with encoding/json (whose field
// matching is case-insensitive) and reports malformed JSON with its offset.
func decodeStrict(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is empty")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return newError(http.StatusBadRequest, "InvalidRequestContent", "malformed JSON at offset %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: te.Field,
				message: fmt.Sprintf("%s: want %s, got a JSON %s (offset %d)", te.Field, te.Type, te.Value, te.Offset)}
		}
		return newError(http.StatusBadRequest, "InvalidRequestContent", "invalid request body: %v", err)
	}
	return nil
}
