// Package dataplane owns moat's registry data plane: the OCI distribution API
// v1.1 (/v2/...) over the metadata and blob stores, and ACR's token
// endpoints (/oauth2/token, /oauth2/exchange; auth.go, tokenflow.go) that
// hand out the bearer tokens it accepts.
//
// Callers: the deployment's principals and refresh tokens (Basic user
// 00000000-0000-0000-0000-000000000000), the registry admin user while
// adminUserEnabled is on, and the anonymous caller where anonymousPullEnabled
// is on (Standard and Premium; pull only). The two registry settings are read
// from the cached registry at every request, so turning one off also stops
// the access tokens issued under it.
//
// The whole request path of /v2 reads top to bottom in ServeHTTP: parse the
// route, pick the registry from the Host header, validate the repository
// name, authenticate, authorize, then run the endpoint's handler. Every
// response is either the endpoint's success or one of the registered errors
// in errors.go, mapped from Go errors in one place (toAPIError).
//
// Invariants:
//
//   - Registry isolation: the registry comes only from the Host header
//     ("{name}.{domain}", else the default registry) and every metadata call
//     is scoped to it. A blob is served from a repository only if it is linked
//     there; cross-repository mounts never leave the registry; an upload is
//     usable only from the registry and repository that started it.
//   - Fail closed: no handler runs before authentication and authorization
//     succeeded; an error from the identity service is a refusal.
//   - Nothing partial becomes visible: a blob is linked only after the blob
//     store committed it under its verified digest; a manifest is stored
//     (with its tag) atomically by the metadata store, after its digest and
//     references were checked.
//   - Client mistakes get 4xx with the spec's error codes, never 500; a panic
//     is recovered into a 500 and logged with its stack.
//   - Uploads keep their state (offset and hash state) in the metadata store,
//     advanced by compare-and-swap, so a chunked upload may continue on any
//     process sharing the stores. Within a process, requests for one upload
//     are serialised so they cannot interleave their writes.
//
// Registry lookups are cached for registryCacheTTL (positive and negative);
// the management plane calls Invalidate after it changes a registry, and other
// replicas see the change within the TTL.
//
// Manifest GET and HEAD are the hot path: one metadata query, no blob-store
// access, no regular expressions.
//
// Network decision and trusted services (network.go, trusted.go): every
// request is judged by the registry's network rules before anything else.
// A trusted service's credential counts only once verified. A request
// without any credentials that the rules refuse, on the public endpoint of
// a registry whose networkRuleBypassOptions is AzureServices, gets the
// ordinary 401 Bearer challenge instead of 403 DENIED, so that stock
// clients (azcontainerregistry sends the real request bare; crane pings
// /v2/) reach the token endpoints, where only a verified trusted service
// passes. The challenge names only the scope the path and method imply and
// looks nothing up; it is audited as a refusal. Everything else the rules
// refuse is 403 DENIED.
//
// Decisions where the spec leaves a choice:
//
//   - Manifests are served as pushed, whatever Accept says (moat never
//     converts them); Content-Type is the stored media type.
//   - A malformed tag is 404 MANIFEST_UNKNOWN on reads (no such manifest can
//     exist; old clients and conformance suites expect 404) and 400
//     TAG_INVALID, the legacy Docker code the spec mentions, on writes. A
//     reference with ':' must be a sha256 or sha512 digest: 400
//     DIGEST_INVALID otherwise.
//   - A mount without from, or from a repository that lacks the blob or that
//     the caller may not pull, starts an ordinary upload (202).
//   - Manifest and blob deletion are enabled; deleting a blob only unlinks it
//     from the repository (garbage collection removes bytes).
//   - A tag list without n returns every tag; n is capped at maxPage with a
//     Link to the rest.
//   - Errors with no spec code (bad n, bad token request, unknown endpoint)
//     use UNSUPPORTED with the fitting status (400, 404, 405); server faults
//     are 500 UNKNOWN.
package dataplane
