package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const exportPipelineType = "Microsoft.ContainerRegistry/registries/exportPipelines"

func registryID(sub, rg, name string) string {
	return groupID(sub, rg) + "/providers/" + providerNS + "/registries/" + name
}

// registryIn reports whether the stored registry's id is the one requested
// (ARM ids compare case-insensitively).
func registryIn(reg meta.Registry, id string) bool { return strings.EqualFold(reg.ResourceID, id) }

func registryNotFound(name, rg string) error {
	return newError(http.StatusNotFound, "ResourceNotFound",
		"the resource '%s/registries/%s' under resource group '%s' was not found", providerNS, name, rg)
}

// load returns the registry at rt or a 404.
func (h *handler) load(ctx context.Context, rt route) (meta.Registry, model.Registry, error) {
	stored, err := h.o.Meta.GetRegistry(ctx, rt.name)
	if errors.Is(err, meta.ErrNotFound) || err == nil && !registryIn(stored, registryID(rt.sub, rt.rg, rt.name)) {
		return meta.Registry{}, model.Registry{}, registryNotFound(rt.name, rt.rg)
	}
	if err != nil {
		return meta.Registry{}, model.Registry{}, err
	}
	reg, err := h.decodeStored(ctx, stored)
	return stored, reg, err
}

func (h *handler) decodeStored(ctx context.Context, stored meta.Registry) (model.Registry, error) {
	reg, err := model.UnmarshalStored(stored.Location, stored.SKU, stored.Properties, stored.Tags)
	if err != nil {
		return model.Registry{}, fmt.Errorf("stored registry %q: %w", stored.Name, err)
	}
	// The default registry is created outside this package with bare
	// properties: fill what ARM always shows.
	reg.Properties.LoginServer = h.loginServer(stored.Name)
	if reg.Properties.CreationDate.IsZero() {
		reg.Properties.CreationDate = stored.CreatedAt
	}
	if reg.Properties.ProvisioningState == "" {
		reg.Properties.ProvisioningState = model.ProvisioningSucceeded
	}
	if err := h.resolveIdentity(ctx, stored.ResourceID, &reg); err != nil {
		return model.Registry{}, err
	}
	return reg, nil
}

func (h *handler) loginServer(name string) string {
	name = strings.ToLower(name)
	if h.o.Domain == "" {
		return name
	}
	return name + "." + strings.TrimPrefix(h.o.Domain, ".")
}

func (h *handler) shape(stored meta.Registry, reg model.Registry, v model.APIVersion) map[string]any {
	id := stored.ResourceID
	name := id[strings.LastIndex(id, "/")+1:]
	return reg.Shape(id, name, v)
}

func (h *handler) registry(w http.ResponseWriter, r *http.Request, rt route, v model.APIVersion) {
	var err error
	switch r.Method {
	case http.MethodGet:
		var stored meta.Registry
		var reg model.Registry
		if stored, reg, err = h.load(r.Context(), rt); err == nil {
			err = h.writeShape(w, r, http.StatusOK, stored, reg, v)
		}
	case http.MethodPut, http.MethodPatch:
		err = h.writeRegistry(w, r, rt, v)
	case http.MethodDelete:
		err = h.deleteRegistry(w, r, rt)
	default:
		h.methodNotAllowed(w, r, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodDelete)
		return
	}
	if err != nil {
		h.writeError(w, r, err)
	}
}

// maxAttempts bounds retries of an update that lost a race.
const maxAttempts = 3

func (h *handler) writeRegistry(w http.ResponseWriter, r *http.Request, rt route, v model.APIVersion) error {
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is empty")
	}
	for attempt := 1; ; attempt++ {
		stored, old, err := h.load(ctx, rt)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusNotFound {
			if r.Method == http.MethodPatch {
				return err
			}
			return h.createRegistry(w, r, rt, v, body)
		}
		if err != nil {
			return err
		}
		base := old
		if r.Method == http.MethodPut {
			base = model.Defaults().WithReadOnly(old)
		}
		if r.Method == http.MethodPut && !v.HasIdentity() {
			// The body could not name the identity: a PUT in an older
			// api-version must not drop it (and delete its principal).
			base.Identity = old.Identity
		}
		next, err := model.Decode(body, v, base)
		if err != nil {
			return err
		}
		vc, err := h.validationContext(ctx, stored.ResourceID)
		if err != nil {
			return err
		}
		if err := model.Validate(&old, next, vc); err != nil {
			return err
		}
		if err := h.keepsPrivateLink(ctx, stored, next); err != nil {
			return err
		}
		if err := h.checkRegistryIdentity(ctx, next.Identity); err != nil {
			return err
		}
		now := time.Now().UTC()
		if next.Properties.Policies.RetentionPolicy != old.Properties.Policies.RetentionPolicy {
			next.Properties.Policies.RetentionPolicy.LastUpdatedTime = now
		}
		if next.Properties.Policies.SoftDeletePolicy != old.Properties.Policies.SoftDeletePolicy {
			next.Properties.Policies.SoftDeletePolicy.LastUpdatedTime = now
		}
		rec, err := record(stored, next)
		if err != nil {
			return err
		}
		// The principal exists before the registry names it, so a stored
		// SystemAssigned always has one; a failed store removes a principal
		// this request created.
		if next.Identity.System() {
			if err := h.ensureRegistryIdentity(ctx, stored.ResourceID); err != nil {
				return err
			}
		}
		undo := func() {
			if next.Identity.System() && !old.Identity.System() {
				h.dropRegistryIdentity(ctx, stored.ResourceID)
			}
		}
		saved, err := h.o.Meta.UpdateRegistry(ctx, rec)
		if errors.Is(err, meta.ErrConflict) && attempt < maxAttempts {
			undo()
			continue
		}
		if errors.Is(err, meta.ErrConflict) {
			undo()
			return newError(http.StatusConflict, "Conflict", "registry '%s' changed while it was being updated; retry", rt.name)
		}
		if err != nil {
			undo()
			return err
		}
		if old.Identity.System() && !next.Identity.System() {
			if err := h.deleteRegistryIdentity(ctx, stored.ResourceID); err != nil {
				return err
			}
		}
		h.changed(ctx, saved.Name)
		if err := h.resolveIdentity(ctx, saved.ResourceID, &next); err != nil {
			return err
		}
		return h.writeShape(w, r, http.StatusOK, saved, next, v)
	}
}

func (h *handler) createRegistry(w http.ResponseWriter, r *http.Request, rt route, v model.APIVersion, body []byte) error {
	ctx := r.Context()
	if err := model.ValidateName(rt.name); err != nil {
		return err
	}
	if _, err := h.o.Meta.GetResource(ctx, groupID(rt.sub, rt.rg)); errors.Is(err, meta.ErrNotFound) {
		return groupNotFound(rt.rg)
	} else if err != nil {
		return err
	}
	if _, err := h.o.Meta.GetRegistry(ctx, rt.name); err == nil {
		return nameInUse(rt.name)
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	base := model.Defaults()
	next, err := model.Decode(body, v, base)
	if err != nil {
		return err
	}
	if err := model.Validate(nil, next, model.ValidationContext{IPRuleQuota: h.o.IPRuleQuota}); err != nil {
		return err
	}
	if err := h.checkRegistryIdentity(ctx, next.Identity); err != nil {
		return err
	}
	now := time.Now().UTC()
	next.Properties.LoginServer = h.loginServer(rt.name)
	next.Properties.CreationDate = now
	next.Properties.ProvisioningState = model.ProvisioningSucceeded
	if next.Properties.Policies.RetentionPolicy != base.Properties.Policies.RetentionPolicy {
		next.Properties.Policies.RetentionPolicy.LastUpdatedTime = now
	}
	id := registryID(rt.sub, rt.rg, rt.name)
	rec, err := record(meta.Registry{Name: strings.ToLower(rt.name), ResourceID: id}, next)
	if err != nil {
		return err
	}
	if h.o.ManagedIdentities != nil {
		// A principal left by a registry deleted with its resource group
		// (or by a failed request) is not this registry's: a new registry
		// gets a new principal, as in Azure.
		if err := h.deleteRegistryIdentity(ctx, id); err != nil {
			return err
		}
	}
	if next.Identity.System() {
		if err := h.ensureRegistryIdentity(ctx, id); err != nil {
			return err
		}
	}
	saved, err := h.o.Meta.CreateRegistry(ctx, rec)
	if err != nil && next.Identity.System() {
		h.dropRegistryIdentity(ctx, id)
	}
	if errors.Is(err, meta.ErrAlreadyExists) {
		return nameInUse(rt.name)
	}
	if err != nil {
		return err
	}
	h.changed(ctx, saved.Name)
	if err := h.resolveIdentity(ctx, saved.ResourceID, &next); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, h.shape(saved, next, v))
	return nil
}

// checkRegistryIdentity checks that a registry may have the identity want:
// the identity service is configured, and every user-assigned identity
// exists.
func (h *handler) checkRegistryIdentity(ctx context.Context, want model.Identity) error {
	if want.None() {
		return nil
	}
	mis := h.o.ManagedIdentities
	if mis == nil {
		return &apiError{status: http.StatusNotImplemented, code: "NotImplemented", target: "identity",
			message: "managed identities are not configured on this management plane: identity.type must be None"}
	}
	for _, ua := range want.UserAssigned {
		res, err := h.o.Meta.GetResource(ctx, ua)
		if err == nil && !strings.EqualFold(res.Type, typeUserAssigned.fullType()) {
			err = meta.ErrNotFound
		}
		if err == nil {
			_, err = mis.GetManagedIdentity(ctx, ua)
			if errors.Is(err, identity.ErrManagedIdentityNotFound) {
				err = meta.ErrNotFound
			}
		}
		if errors.Is(err, meta.ErrNotFound) {
			return &apiError{status: http.StatusBadRequest, code: "FailedIdentityOperation", target: "identity.userAssignedIdentities",
				message: fmt.Sprintf("identity.userAssignedIdentities: the user-assigned identity %q was not found", ua)}
		}
		if err != nil {
			return fmt.Errorf("reading user-assigned identity %s: %w", ua, err)
		}
	}
	return nil
}

// ensureRegistryIdentity creates (or keeps) the registry's system-assigned
// principal. moat does not act as the registry with it (no customer-managed
// keys, no tasks): it exists to be shown, given roles and deleted.
func (h *handler) ensureRegistryIdentity(ctx context.Context, regID string) error {
	if _, err := h.o.ManagedIdentities.EnsureManagedIdentity(ctx, regID, false); err != nil {
		return fmt.Errorf("creating the system-assigned identity of %s: %w", regID, err)
	}
	return nil
}

// deleteRegistryIdentity removes the registry's system-assigned principal,
// if any.
func (h *handler) deleteRegistryIdentity(ctx context.Context, regID string) error {
	if h.o.ManagedIdentities == nil {
		return nil
	}
	if err := h.o.ManagedIdentities.DeleteManagedIdentity(ctx, regID); err != nil {
		return fmt.Errorf("removing the system-assigned identity of %s: %w", regID, err)
	}
	return nil
}

// dropRegistryIdentity is deleteRegistryIdentity on a path that already
// fails: it logs instead.
func (h *handler) dropRegistryIdentity(ctx context.Context, regID string) {
	if err := h.deleteRegistryIdentity(ctx, regID); err != nil {
		h.log.ErrorContext(ctx, "removing registry identity", "registry", regID, "err", err)
	}
}

// resolveIdentity fills reg.IdentityDetails from the identity service. A
// principal that is gone (a user-assigned identity deleted since) shows
// without ids, as ARM shows a dangling reference.
func (h *handler) resolveIdentity(ctx context.Context, regID string, reg *model.Registry) error {
	reg.IdentityDetails = model.IdentityDetails{}
	mis := h.o.ManagedIdentities
	if reg.Identity.None() || mis == nil {
		return nil
	}
	if reg.Identity.System() {
		mi, err := mis.GetManagedIdentity(ctx, regID)
		switch {
		case err == nil:
			reg.IdentityDetails.PrincipalID, reg.IdentityDetails.TenantID = mi.PrincipalID, mi.TenantID
		case errors.Is(err, identity.ErrManagedIdentityNotFound):
			h.log.WarnContext(ctx, "registry names a system-assigned identity that does not exist", "registry", regID)
		default:
			return fmt.Errorf("reading the system-assigned identity of %s: %w", regID, err)
		}
	}
	if len(reg.Identity.UserAssigned) > 0 {
		reg.IdentityDetails.UserAssigned = map[string]model.UserIdentityDetails{}
	}
	for _, ua := range reg.Identity.UserAssigned {
		mi, err := mis.GetManagedIdentity(ctx, ua)
		if errors.Is(err, identity.ErrManagedIdentityNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading user-assigned identity %s: %w", ua, err)
		}
		reg.IdentityDetails.UserAssigned[strings.ToLower(ua)] = model.UserIdentityDetails{PrincipalID: mi.PrincipalID, ClientID: mi.ClientID}
	}
	return nil
}

func nameInUse(name string) error {
	return &apiError{status: http.StatusConflict, code: model.CodeRegistryNameInUse, target: "name",
		message: fmt.Sprintf("the registry name '%s' is already in use in this deployment", name)}
}

// record puts reg into the stored form, keeping the record's name, id and
// version.
func record(rec meta.Registry, reg model.Registry) (meta.Registry, error) {
	props, err := reg.MarshalProperties()
	if err != nil {
		return meta.Registry{}, fmt.Errorf("encoding registry properties: %w", err)
	}
	var tags []byte
	if reg.Tags != nil {
		if tags, err = json.Marshal(reg.Tags); err != nil {
			return meta.Registry{}, fmt.Errorf("encoding registry tags: %w", err)
		}
	}
	rec.Location, rec.SKU, rec.Properties, rec.Tags = reg.Location, reg.SKU, props, tags
	return rec, nil
}

func (h *handler) validationContext(ctx context.Context, regID string) (model.ValidationContext, error) {
	pipes, err := h.o.Meta.ListResources(ctx, regID, exportPipelineType)
	if err != nil {
		return model.ValidationContext{}, err
	}
	return model.ValidationContext{IPRuleQuota: h.o.IPRuleQuota, HasExportPipelines: len(pipes) > 0}, nil
}

func (h *handler) deleteRegistry(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	stored, _, err := h.load(ctx, rt)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.o.Meta.DeleteRegistry(ctx, stored.Name); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	// Its system-assigned identity goes with it (after the registry, so a
	// failure leaves no registry naming a missing principal).
	if err := h.deleteRegistryIdentity(ctx, stored.ResourceID); err != nil {
		return err
	}
	// Child resources (pipelines, private endpoint connections) go with it.
	children, err := h.o.Meta.ListResources(ctx, stored.ResourceID, "")
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := h.o.Meta.DeleteResource(ctx, c.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	h.changed(ctx, stored.Name)
	w.WriteHeader(http.StatusOK)
	return nil
}

// registriesUnder lists stored registries whose lower-cased id starts with
// prefix, by name.
func (h *handler) registriesUnder(ctx context.Context, prefix string) ([]meta.Registry, error) {
	all, err := h.o.Meta.ListRegistries(ctx)
	if err != nil {
		return nil, err
	}
	var out []meta.Registry
	for _, reg := range all {
		if strings.HasPrefix(strings.ToLower(reg.ResourceID), prefix) {
			out = append(out, reg)
		}
	}
	return out, nil
}

func (h *handler) listRegistries(w http.ResponseWriter, r *http.Request, rt route, v model.APIVersion) error {
	prefix := strings.ToLower("/subscriptions/" + rt.sub + "/resourceGroups/")
	if rt.rg != "" {
		prefix = strings.ToLower(groupID(rt.sub, rt.rg) + "/providers/" + providerNS + "/registries/")
	}
	regs, err := h.registriesUnder(r.Context(), prefix)
	if err != nil {
		return err
	}
	items := make([]any, 0, len(regs))
	for _, stored := range regs {
		// ARM lists what the caller may read and leaves the rest out.
		if ok, err := h.may(r, rbac.ActionRegistryRead, stored.ResourceID); err != nil {
			return err
		} else if !ok {
			continue
		}
		reg, err := h.decodeStored(r.Context(), stored)
		if err != nil {
			return err
		}
		m, err := h.shapeWithConnections(r.Context(), stored, reg, v)
		if err != nil {
			return err
		}
		items = append(items, m)
	}
	h.writePage(w, r, items)
	return nil
}

// writePage answers one page of items with ARM's value/nextLink. The
// $skipToken is the offset of the page; lists are ordered by name, so a
// page boundary moves only when items are created or deleted meanwhile.
func (h *handler) writePage(w http.ResponseWriter, r *http.Request, items []any) {
	start := 0
	q := r.URL.Query()
	if tok := q.Get("$skipToken"); tok != "" {
		if n, err := strconv.Atoi(tok); err == nil && n >= 0 {
			start = min(n, len(items))
		}
	}
	end := min(start+h.pageSize, len(items))
	out := map[string]any{"value": items[start:end]}
	if end < len(items) {
		q.Set("$skipToken", strconv.Itoa(end))
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		out["nextLink"] = baseURL(r) + u.String()
	}
	writeJSON(w, http.StatusOK, out)
}
