// Package rbac owns moat's role-based access control decision: the built-in
// role definitions (ACR's and ARM's own, with their real ids, names and
// permissions), ARM's action wildcard matching, scopes and their
// inheritance, and the decision Allowed(assignments, principal, action,
// scope). It also maps the data plane's Docker actions (pull, push, delete,
// catalog listing, sign) to the ARM actions ACR checks for them.
//
// The decision functions are pure; the only I/O is Load, which reads the
// stored role assignments (meta.Resources of type RoleAssignmentType).
//
// Invariants and decisions:
//
//   - Fail closed: an unknown role definition, a principal id of "", an
//     unparsable scope or an action no permission names grants nothing.
//   - Actions, role names and ids compare case-insensitively, as in ARM. A
//     '*' in an action pattern matches any run of characters, '/' included
//     ("*/read" matches "Microsoft.ContainerRegistry/registries/pull/read",
//     which is why Reader may pull, as ACR's role table says).
//   - A permission allows an action when one of its actions matches and none
//     of its notActions does; a principal is allowed when any of its
//     assignments at or above the scope allows it. There are no deny
//     assignments.
//   - Scope "/" (the deployment root, where moat keeps the bootstrap
//     admin's Owner assignment) covers every scope; any other scope covers
//     itself and every id below it, segment-wise ("/…/rg1" does not cover
//     "/…/rg10").
//   - Catalog listing (/v2/_catalog) is allowed to whoever may pull (ACR's
//     registries in "RBAC registry permissions" mode do so) or holds the
//     registries/catalog/read data action.
package rbac
