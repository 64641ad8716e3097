// Package model owns the resources of moat's management plane as ARM shows
// them — today the Microsoft.ContainerRegistry/registries resource — and
// their validation. It is pure: no I/O, no clock except what callers pass.
//
// Invariants:
//
//   - Request bodies are read with Decode onto a base registry: a field the
//     body names replaces the base's value, any other field keeps it. A PUT
//     decodes onto Defaults (plus the read-only values of the stored
//     registry), a PATCH onto the stored registry, so one function gives ARM's
//     replace and merge semantics. Arrays are replaced whole ("ipRules": []
//     clears them); null means "not given".
//   - Property names match case-insensitively and the last duplicate wins
//     (az resource update --set sends both "status" and "Status"); enum
//     values match case-insensitively and are stored in canonical case.
//   - Read-only properties (loginServer, creationDate, provisioningState,
//     privateEndpointConnections, sku.tier, lastUpdatedTime) are ignored in
//     request bodies; unknown properties are ignored as ARM does.
//   - The top-level identity block (identity.go) is decoded, validated and
//     stored with the properties under a moat-internal key; its read-only
//     ids come from the identity service through Registry.IdentityDetails.
//   - A property that did not exist in the request's api-version is treated
//     as unknown on input and left out of the output (see APIVersions).
//   - Validate is a pure function of (old, new, context) that returns the
//     first violated rule of DESIGN.md §2 as an *Error with an ARM code, an
//     HTTP status and a message naming the offending value and its path.
package model
