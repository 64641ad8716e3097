// Package armtemplate owns the evaluation of Azure Resource Manager (ARM)
// deployment templates: reading them (JSON or JSONC), the template
// expression language, and turning a template plus parameters and a
// deployment context into concrete resources in deployment order. It is
// shared by template deployments in the management API (ModeDeploy) and by
// `moat check` (ModeCheck). It is pure: no I/O, no clock, no randomness
// (utcNow and newGuid take their values from Options), no network.
//
// # Reading
//
// ReadJSONC accepts JSON plus // and /* */ comments, trailing commas and a
// UTF-8 BOM; the last of duplicate keys wins. Integers that fit int64 come
// back as int64, other numbers as float64. Errors are *JSONError with a
// 1-based line and byte column. Positions maps JSON paths such as
// resources[2].properties.networkRuleSet (keys that are not identifiers are
// written ['like this']) to where the value starts. ParseTemplate and
// ParseParameters build on it; CoerceParameter converts command-line k=v text
// to a parameter's declared type.
//
// # Expressions
//
// A template string "[...]" is an expression; "[[" at the start escapes a
// literal "[". Package expr parses expressions (string literals with ”
// escapes, integers, calls with case-insensitive names, .property and
// [index] access) with a bounded depth. Supported functions:
//
//	template:   parameters variables copyIndex([loop][, offset])
//	context:    resourceGroup subscription deployment (name, properties.mode)
//	ids:        resourceId (0, 1 or 2 of subscription/group before the type; child
//	            types take one name per segment, "a/b" names are split)
//	            subscriptionResourceId tenantResourceId extensionResourceId
//	logic:      if and or not equals coalesce true false null
//	compare:    less lessOrEquals greater greaterOrEquals
//	numbers:    add sub mul div mod min max int range
//	strings:    concat format toLower toUpper trim replace split substring
//	            startsWith endsWith indexOf lastIndexOf padLeft string
//	            uniqueString guid base64 base64ToString bool json
//	collections: empty contains union intersection length createArray
//	            createObject array first last skip take items objectKeys
//	live:       list* (listKeys, listCredentials, ...) environment pickZones
//	            managementGroup tenant deployer providers resourceInfo →
//	            Unknown; reference utcNow newGuid → Unknown unless
//	            Options.Reference / Options.Now / Options.NewGUID answer
//
// uniqueString is ARM's algorithm: the inputs joined by "-", hashed with the
// 64-bit MurmurHash variant ARM uses, written as 13 lower-case base32
// characters; the tests pin published outputs. guid is a version 5 UUID of
// the inputs joined by "-" in namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830;
// it is deterministic, but unlike uniqueString no ARM-produced value has been
// checked against it. format supports {n}, {n,align}, {n:D3}, {n:N2}, {n:F2},
// {n:X} and zero patterns such as {n:000}; other format strings are errors.
// string(true) is "True", as in .NET. Strings compare ordinally and
// case-sensitively in equals/contains/allowedValues; startsWith, endsWith
// and indexOf ignore case, as ARM's do. Lengths count UTF-16 code units.
//
// Not supported (an error or Unknown, never a wrong value): user-defined
// functions (namespace.fn()), lambda functions (filter, map, reduce, sort,
// toObject), the date, uri and dataUri functions, list*() with real results,
// linked templates (templateLink), and subscription-, management-group- or
// tenant-scoped deployments (ids are resource-group scoped; a nested
// deployment's resourceGroup and subscriptionId are honoured).
//
// # Unknown
//
// *Unknown is a value like any other. It stands for what cannot be known
// offline: reference(), list*(), a Key Vault parameter reference, a missing
// parameter in ModeCheck, and everything computed from those. It records the
// expression that produced it (Expr, e.g. "reference('acr')"), the JSON path
// of the template string and its position, so a caller can report "cannot
// determine: reference('acr')". Functions given an Unknown argument return
// it, except where the answer does not depend on it: and(false, U) is false,
// or(true, U) is true, if(U, a, b) is a when a equals b, coalesce returns the
// first non-null known value before an Unknown, createArray/createObject/
// array keep Unknown elements, and property access or indexing on an
// Unknown is that Unknown. An Unknown resource condition leaves the
// resource in (Resource.ConditionUnknown); an Unknown copy count in
// ModeCheck yields one instance whose copyIndex() is Unknown; an Unknown
// name leaves Resource.Name empty and sets NameUnknown. In ModeDeploy a
// missing parameter or an undeterminable copy count is an error instead.
//
// # Evaluation
//
// Evaluate resolves every parameter (supplied value or defaultValue, then
// type, allowedValues, min/maxValue, min/maxLength), every variable (lazily,
// so order does not matter; cycles are errors naming the chain; variable
// copy loops), then the resources: condition, copy (count, name,
// serial/parallel, batchSize), property copy loops, nested child resources
// (type and name composed from the parent, an implicit dependency), extension
// resources via "scope" or the classic registries/providers/... type, and
// languageVersion 2.0 symbolic resources with "existing". dependsOn entries
// resolve by symbolic name, copy loop name, resource id, "type/name" or
// name; the deployment order is a stable topological sort (template order
// among independent resources) and a cycle is an error naming it. Outputs
// honour condition, copy and their declared type. An inline nested
// deployment (Microsoft.Resources/deployments with properties.template) is
// evaluated into Resource.Deployment: with expressionEvaluationOptions.scope
// "inner" as a template of its own fed properties.parameters, otherwise
// (ARM's default "outer") against the enclosing parameters and variables.
// Result.Walk visits nested resources too.
//
// Limits (Options): 800 instances per copy loop and 800 resources in all
// (nested deployments included), as ARM; 128 levels of expression nesting;
// 4 MiB per built string; 100,000 elements per built array; range() at most
// 10,000; nested deployments 8 deep; and a work budget (MaxWork, 50 million
// steps) that bounds values sharing structure through variables, so
// equals(), string() or a resource body built from them cannot run away.
// Exceeding any limit is an ErrLimit error, quickly. Errors are *Error values
// carrying the JSON path, the template string and its line and column, and
// wrap one of the sentinel errors (ErrUnknownFunction, ErrArity, ErrType,
// ErrParameterType, ErrParameterValue, ErrCycle, ErrLimit, ...) or an
// *expr.SyntaxError, so callers can map them to ARM error codes.
package armtemplate
