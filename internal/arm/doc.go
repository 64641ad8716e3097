// Package arm owns moat's management plane: an http.Handler that speaks the
// Azure Resource Manager dialect of Microsoft.ContainerRegistry and
// Microsoft.Resources/resourceGroups, so ARM templates, az-style tools and
// the Azure SDKs can manage the registries of a moat deployment.
//
// Routes (path segments match case-insensitively, as in ARM):
//
//	PUT|GET|HEAD|DELETE /subscriptions/{sub}/resourcegroups/{rg}
//	GET                 /subscriptions/{sub}/resourcegroups
//	PUT|PATCH|GET|DELETE …/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}
//	GET                 …/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries
//	GET                 /subscriptions/{sub}/providers/Microsoft.ContainerRegistry/registries
//	GET                 …/registries/{name}/listUsages
//	GET                 …/registries/{name}/auditRecords        (moat extension, network.go)
//	POST                …/registries/{name}/checkNetworkAccess  (moat extension, network.go)
//	POST                …/registries/{name}/importImage         (long-running, import.go)
//	GET                 …/registries/{name}/importOperations/{id} (its status, import.go)
//	PUT|PATCH|GET|DELETE …/registries/{name}/scopeMaps/{s}, GET …/scopeMaps (scopemaps.go)
//	PUT|PATCH|GET|DELETE …/registries/{name}/tokens/{t}, GET …/tokens (tokens.go)
//	POST                …/registries/{name}/generateCredentials (tokens.go)
//	GET|PUT|DELETE      …/registries/{name}/privateEndpointConnections[/{c}] (privateendpoints.go)
//	GET                 …/registries/{name}/privateLinkResources[/{group}]    (privateendpoints.go)
//	PUT|GET|DELETE      …/resourceGroups/{rg}/providers/Microsoft.Network/privateEndpoints/{name}, lists (privateendpoints.go)
//	PUT|GET|HEAD|DELETE …/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name} (template deployments, deployments.go)
//	POST                /subscriptions/{sub}/providers/Microsoft.ContainerRegistry/checkNameAvailability
//	GET                 /providers/Microsoft.ContainerRegistry/operations
//	PUT|GET|DELETE      {scope}/providers/Microsoft.Authorization/roleAssignments/{guid} (roles.go)
//	GET                 {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=]
//	GET                 {scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}]
//	GET                 /providers/Microsoft.Authorization/principals/{ref} (moat extension)
//	POST|GET|DELETE     /providers/Moat.Identity/servicePrincipals[/{appId}[/resetCredentials]] (moat extension, principals.go)
//	POST|PUT|GET|DELETE /providers/Moat.Identity/users[/{name}[/resetPassword]] (moat extension, principals.go)
//
// Invariants and decisions:
//
//   - Every request is authenticated by Options.Authorize before anything
//     else is read; without an Authorize hook every request is refused with
//     401 (fail closed). Every route then calls require with its ARM action
//     and the scope it acts on, before it reads or changes anything; the
//     caller's role assignments (rbac.Allowed, read once per request)
//     decide, and a refusal is 403 AuthorizationFailed naming the caller's
//     object id, the action and the scope. Lists answer only what the caller
//     may read. The provider's operation list and the built-in role
//     definitions are readable by every authenticated caller, as in ARM.
//   - Users and service principals (Moat.Identity, principals.go) need
//     Microsoft.Authorization/principals/write at "/" to change and
//     .../principals/read to read; a secret or password is answered only by
//     the request that set it. Deleting a principal deletes its role
//     assignments; the deployment admin cannot be deleted.
//   - Role assignments are meta.Resources of type
//     Microsoft.Authorization/roleAssignments with the id
//     {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}, so
//     deleting a resource group or registry deletes the assignments at or
//     below it. Only Owner-like roles (roleAssignments/write) may create
//     them; one principal holds one role at one scope at most once
//     (409 RoleAssignmentExists). Conditions are refused, not ignored.
//   - Every request needs an api-version the resource provider published
//     (model.APIVersions for Microsoft.ContainerRegistry, a list of
//     Microsoft.Resources versions for resource groups); otherwise 400
//     MissingApiVersionParameter or InvalidApiVersionParameter.
//   - Errors are ARM error bodies {"error":{"code","message","target"}} with
//     the code repeated in x-ms-error-code. moat never answers 409
//     MissingSubscriptionRegistration: every subscription id is accepted.
//   - Registries live in the metadata store's registries table (the data
//     plane reads it); resource groups are meta.Resources. A registry's name
//     is unique in the deployment. Creating one needs its resource group; the
//     default registry made by moat serve predates resource groups and is
//     managed in place (no name or group checks on update).
//   - Writes are validated in full (model.Validate) before anything is
//     stored, so nothing is half-applied; a concurrent update of the same
//     registry is retried on the fresh record, never merged blindly.
//   - PUT and PATCH finish synchronously and answer provisioningState
//     Succeeded (201 on create, 200 on update), so clients need not poll;
//     DELETE finishes synchronously and answers 200 (204 when there was
//     nothing to delete), which every SDK accepts.
//   - OnRegistryChange is called after a registry is created, updated or
//     deleted, so caches of registry configuration can be invalidated.
package arm
