package arm

// moat's extensions for network access, on a registry:
//
//	GET  …/registries/{name}/auditRecords?api-version=…[&$filter=denied][&since=RFC3339][&$top=N]
//	POST …/registries/{name}/checkNetworkAccess?api-version=…
//
// auditRecords lists the audit records of the data plane's network
// decisions, newest first, as {"value":[…]}. checkNetworkAccess explains
// the network decision (DESIGN.md §3) a request with the given client IP,
// private endpoint and trusted-service identity would get now, from the
// registry's stored configuration, with the same code the data plane runs.

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	extAuditRecords = "auditRecords"
	extCheckAccess  = "checkNetworkAccess"
	// auditDefaultTop and auditMaxTop bound one auditRecords answer.
	auditDefaultTop = 1000
	auditMaxTop     = 10000
)

// parseNetworkExtension recognises the extension routes; action is "" for
// any other path.
func parseNetworkExtension(path string) (rt route, action string) {
	rt, rest, ok := registrySubpath(path, 1)
	if !ok {
		return route{}, ""
	}
	switch {
	case eq(rest[0], extAuditRecords):
		return rt, extAuditRecords
	case eq(rest[0], extCheckAccess):
		return rt, extCheckAccess
	}
	return route{}, ""
}

// serveNetworkExtension serves the extension routes of an authorized
// request and reports whether the path was one of them.
func (h *handler) serveNetworkExtension(w http.ResponseWriter, r *http.Request) bool {
	rt, action := parseNetworkExtension(r.URL.Path)
	if action == "" {
		return false
	}
	if _, err := h.apiVersion(r, false); err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	id := registryID(rt.sub, rt.rg, rt.name)
	switch action {
	case extAuditRecords:
		h.only(w, r, http.MethodGet, func() error {
			if err := h.require(r, actionAuditRead, id); err != nil {
				return err
			}
			return h.auditRecords(w, r, rt)
		})
	case extCheckAccess:
		h.only(w, r, http.MethodPost, func() error {
			if err := h.require(r, actionCheckAccess, id); err != nil {
				return err
			}
			return h.checkNetworkAccess(w, r, rt)
		})
	}
	return true
}

// auditRecordJSON is one record as the API shows it.
type auditRecordJSON struct {
	ID             string    `json:"id"`
	Time           time.Time `json:"time"`
	Registry       string    `json:"registry"`
	Endpoint       string    `json:"endpoint"`
	ClientIP       string    `json:"clientIp"`
	Principal      string    `json:"principal,omitempty"`
	Allowed        bool      `json:"allowed"`
	Step           string    `json:"step"`
	Reason         string    `json:"reason"`
	RuleSetVersion string    `json:"ruleSetVersion"`
	Method         string    `json:"method"`
	Path           string    `json:"path"`
}

func (h *handler) auditRecords(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	f := meta.AuditFilter{Limit: auditDefaultTop}
	switch v := strings.TrimSpace(q.Get("$filter")); {
	case v == "":
	case strings.EqualFold(v, "denied"), strings.EqualFold(v, "allowed eq false"):
		f.DeniedOnly = true
	default:
		return badQuery("$filter", "the $filter %q is not supported; use $filter=denied", v)
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return badQuery("since", "since %q is not an RFC 3339 time", v)
		}
		f.Since = t
	}
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > auditMaxTop {
			return badQuery("$top", "$top %q is not a number from 1 to %d", v, auditMaxTop)
		}
		f.Limit = n
	}
	stored, _, err := h.load(r.Context(), rt)
	if err != nil {
		return err
	}
	rs, err := h.o.Meta.ListAuditRecords(r.Context(), stored.Name, f)
	if err != nil {
		return err
	}
	out := make([]auditRecordJSON, 0, len(rs))
	for _, a := range rs {
		out = append(out, auditRecordJSON{ID: a.ID, Time: a.Time, Registry: a.Registry, Endpoint: a.Endpoint,
			ClientIP: a.ClientIP, Principal: a.Principal, Allowed: a.Allowed, Step: a.Step, Reason: a.Reason,
			RuleSetVersion: a.RuleSetVersion, Method: a.Method, Path: a.Path})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func badQuery(target, format string, args ...any) error {
	e := newError(http.StatusBadRequest, "InvalidQueryParameterValue", format, args...)
	e.target = target
	return e
}

func badContent(target, format string, args ...any) error {
	e := newError(http.StatusBadRequest, "InvalidRequestContent", format, args...)
	e.target = target
	return e
}

type checkAccessRequest struct {
	ClientIP        string `json:"clientIp"`
	PrivateEndpoint string `json:"privateEndpoint"`
	TrustedService  string `json:"trustedService"`
}

type checkAccessResponse struct {
	Allowed        bool   `json:"allowed"`
	Step           string `json:"step"`
	Rule           string `json:"rule,omitempty"`
	Reason         string `json:"reason"`
	RuleSetVersion string `json:"ruleSetVersion"`
	ClientIP       string `json:"clientIp"`
	TrustedService string `json:"trustedService,omitempty"`
}

// trustedServiceNames lists the accepted trustedService values.
func trustedServiceNames() string {
	names := make([]string, 0, len(netrule.TrustedServices))
	for _, si := range netrule.TrustedServices {
		names = append(names, strings.ReplaceAll(si.Name, " ", ""))
	}
	return strings.Join(names, ", ")
}

// parseTrustedService reads a catalogue name with or without its spaces,
// in any case ("ContainerInstances", "container instances"); "" and "None"
// are no service.
func parseTrustedService(s string) (netrule.TrustedService, bool) {
	key := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if key == "" || key == "none" {
		return netrule.None, true
	}
	for _, si := range netrule.TrustedServices {
		if strings.ToLower(strings.ReplaceAll(si.Name, " ", "")) == key {
			return si.Service, true
		}
	}
	return netrule.None, false
}

func (h *handler) checkNetworkAccess(w http.ResponseWriter, r *http.Request, rt route) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in checkAccessRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return badContent("", "the request body is not a JSON object with clientIp, privateEndpoint and trustedService: %v", err)
	}
	if strings.TrimSpace(in.ClientIP) == "" {
		return badContent("clientIp", "clientIp is required")
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(in.ClientIP))
	if err != nil {
		return badContent("clientIp", "clientIp %q is not an IPv4 or IPv6 address", in.ClientIP)
	}
	svc, ok := parseTrustedService(in.TrustedService)
	if !ok {
		return badContent("trustedService", "trustedService %q is not one of %s", in.TrustedService, trustedServiceNames())
	}
	stored, reg, err := h.load(r.Context(), rt)
	if err != nil {
		return err
	}
	eps, err := privatelink.ForRegistry(r.Context(), h.o.Meta, stored.ResourceID)
	if err != nil {
		return err
	}
	out := checkAccessResponse{ClientIP: ip.Unmap().String()}
	if svc != netrule.None {
		out.TrustedService = svc.String()
	}
	pol, err := netrule.Compile(reg, eps)
	if err != nil {
		// The data plane refuses every request of such a registry.
		out.Step, out.Reason = "configuration-error", "network configuration unreadable: "+err.Error()
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	d := pol.Decide(netrule.Request{ClientIP: ip, PrivateEndpointID: strings.TrimSpace(in.PrivateEndpoint), TrustedService: svc})
	out.Allowed, out.Step, out.Rule, out.Reason, out.RuleSetVersion = d.Allowed, d.Step.String(), d.Rule, d.Reason, pol.Version()
	writeJSON(w, http.StatusOK, out)
	return nil
}
