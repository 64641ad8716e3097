package arm

// What-if (POST …/deployments/{name}/whatIf): the changes a deployment
// would make, predicted without applying anything. The template is
// evaluated as for a PUT; each resource it would deploy is read with a GET
// dispatched as the caller (so reading needs read permission on it) and
// compared with what the template sets:
//
//   - Create when the resource does not exist, NoChange when every
//     property the template sets already has that value, Modify otherwise
//     (delta lists the properties that differ); Unsupported when the type
//     is not served by moat, the resource's name depends on reference(),
//     or reading it failed (the reason says which).
//   - Only what the template sets is compared: a full PUT also resets
//     properties it leaves out to their defaults, which moat does not
//     predict. Strings compare case-insensitively (enum values come back
//     in canonical case). Values that depend on reference() appear as
//     moat's Unknown marker and count as changes.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/moat-registry/moat/internal/armtemplate"
)

func (h *handler) whatIfDeployment(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/whatIf/action", d.id()); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeDeploymentRequest(body)
	if err != nil {
		return err
	}
	opts, err := h.deployContext(ctx, d)
	if err != nil {
		return err
	}
	_, res, err := evaluateOnce(req, opts)
	if err != nil {
		return err
	}
	rec := &deploymentRecord{BaseURL: baseURL(r), RemoteAddr: r.RemoteAddr, Header: forwardHeaders(r.Header)}
	changes := []any{}
	var fail error
	res.Walk(func(rs *armtemplate.Resource) {
		if fail != nil || !rs.Deployed() || (strings.EqualFold(rs.Type, deploymentType) && rs.Deployment != nil) {
			return
		}
		change, err := h.whatIfResource(r, rec, rs)
		if err != nil {
			fail = err
			return
		}
		changes = append(changes, change)
	})
	if fail != nil {
		return fail
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": stateSucceeded, "properties": map[string]any{"changes": changes}})
	return nil
}

func (h *handler) whatIfResource(r *http.Request, rec *deploymentRecord, rs *armtemplate.Resource) (map[string]any, error) {
	unsupported := func(id, reason string) map[string]any {
		return map[string]any{"resourceId": id, "changeType": "Unsupported", "unsupportedReason": reason}
	}
	if rs.NameUnknown != nil {
		return unsupported(rs.Path, fmt.Sprintf("the name of %s depends on %s", rs.Type, rs.NameUnknown.Expr)), nil
	}
	payload := map[string]any{}
	for k, v := range rs.Body {
		if !bodyDrop[strings.ToLower(k)] {
			payload[k] = v
		}
	}
	out, err := h.dispatch(r.Context(), rec, http.MethodGet, rs.ID, rs.APIVersion, nil)
	if err != nil {
		return nil, err
	}
	after := map[string]any{"id": rs.ID, "name": rs.Name, "type": rs.Type, "apiVersion": rs.APIVersion}
	switch {
	case out.status == http.StatusNotFound && responseError(out, "").Code != "NotFound":
		for k, v := range payload {
			after[k] = v
		}
		return map[string]any{"resourceId": rs.ID, "changeType": "Create", "after": after}, nil
	case out.status == http.StatusForbidden:
		return nil, responseAPIError(out)
	case out.status != http.StatusOK:
		re := responseError(out, fmt.Sprintf("reading it answered %d", out.status))
		if re.Code == "InvalidResourceType" || re.Code == "NotFound" {
			return unsupported(rs.ID, fmt.Sprintf("the resource type '%s' is not served by moat", rs.Type)), nil
		}
		return unsupported(rs.ID, re.Code+": "+re.Message), nil
	}
	before, ok := decodeObject(out.body.Bytes())
	if !ok {
		return unsupported(rs.ID, "its current state is not a JSON object"), nil
	}
	delta := diffInto(before, payload, "")
	merged := overlay(before, payload).(map[string]any)
	for k, v := range after {
		merged[k] = v
	}
	change := map[string]any{"resourceId": rs.ID, "changeType": "NoChange", "before": before, "after": merged}
	if len(delta) > 0 {
		change["changeType"], change["delta"] = "Modify", delta
	}
	return change, nil
}

// responseAPIError turns a dispatched error answer back into the caller's.
func responseAPIError(out *recorder) error {
	re := responseError(out, "")
	return &apiError{status: out.status, code: re.Code, message: re.Message, target: re.Target}
}

// diffInto lists the properties set in want whose value differs in have.
func diffInto(have map[string]any, want map[string]any, prefix string) []any {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []any
	for _, k := range keys {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		hv, present := lookupKey(have, k)
		wv := want[k]
		hm, hok := hv.(map[string]any)
		wm, wok := wv.(map[string]any)
		switch {
		case !present:
			out = append(out, map[string]any{"path": path, "propertyChangeType": "Create", "after": wv})
		case hok && wok:
			if sub := diffInto(hm, wm, path); len(sub) > 0 {
				out = append(out, map[string]any{"path": path, "propertyChangeType": "Modify", "before": hv, "after": wv, "children": sub})
			}
		case !sameValue(hv, wv):
			out = append(out, map[string]any{"path": path, "propertyChangeType": "Modify", "before": hv, "after": wv})
		}
	}
	return out
}

// sameValue compares JSON values; strings ignore case, numbers compare by
// value.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && strings.EqualFold(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		return ok && len(x) == len(y) && len(diffInto(x, y, "")) == 0
	case int64, float64:
		return toFloat(a) == toFloat(b)
	}
	return a == b
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return -1e308
}

// overlay is base with the values of top set over it, objects merged.
func overlay(base, top any) any {
	bm, bok := base.(map[string]any)
	tm, tok := top.(map[string]any)
	if !bok || !tok {
		return top
	}
	out := make(map[string]any, len(bm))
	for k, v := range bm {
		out[k] = v
	}
	for k, v := range tm {
		key := k
		for bk := range bm {
			if strings.EqualFold(bk, k) {
				key = bk
			}
		}
		out[key] = overlay(out[key], v)
	}
	return out
}
