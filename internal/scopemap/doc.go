// Package scopemap owns the rules of ACR's repository-scoped tokens that the
// management plane (internal/arm) and the identity service (internal/identity)
// share: the grammar of scope-map actions, the built-in scope maps every
// registry has, the stored form of scope maps and tokens, and the pure
// decision of which Docker token actions a scope map grants on a repository.
//
// Invariants and decisions:
//
//   - An action is repositories/{repository}/{content|metadata}/{verb}:
//     content/read, content/write, content/delete, metadata/read and
//     metadata/write. {repository} is a repository name, a prefix wildcard
//     "samples/*" (one '*', last, after a '/') or the root wildcard "*".
//     Anything else is refused, including ACR's gateway/… actions: they name
//     connected registries, which moat does not serve.
//   - Grants are additive: every rule whose repository matches contributes
//     its action. content/read, content/write and content/delete grant the
//     Docker actions pull, push and delete; metadata/read and metadata/write
//     grant ACR's metadata_read and metadata_write. Nothing grants the
//     registry catalog: ACR documents that repository-scoped permissions
//     cannot list the catalog.
//   - Built-in scope maps (_repositories_admin, _repositories_pull,
//     _repositories_pull_metadata_read, _repositories_push,
//     _repositories_push_metadata_write) are not stored: they exist in every
//     registry and cannot be changed or deleted.
//   - Token passwords are stored only as bcrypt hashes; their values are
//     returned once, by the call that generated them.
package scopemap
