// Package bicep owns reading Bicep files natively (no .NET, no bicep
// binary) and lowering them to ARM template JSON trees that package
// armtemplate evaluates, so `moat check` treats Bicep and ARM templates
// alike. It is pure: no I/O except through the optional Loader that reads
// local modules, no clock, no randomness.
//
// # API
//
// Lex and Parse give tokens and a syntax tree (*File); Compile parses and
// lowers in one step and returns the template as map[string]any, ready for
// armtemplate.NewTemplate; CompileMapped also maps the template's JSON
// paths (as armtemplate reports them) back to Bicep lines and columns.
// Options: WithLoader(Loader) reads local modules,
// AllowUndeclared (below). Every error is an *Error carrying the file, the
// 1-based line and the byte column, and naming the construct when it is one
// this package does not support; nothing is dropped silently.
//
// # Supported syntax
//
// Comments (// and /* */), a UTF-8 BOM, newline-separated statements:
// param (type, default, decorators), var (with an optional type), resource
// ('type@apiVersion', existing, = {...}, = if (cond) {...},
// = [for x in coll: {...}], [for (x, i) in coll: if (cond) {...}], nested
// child resources in the body, parent:, scope:, dependsOn:), module
// (= {...}, if, for; name, params, scope: resourceGroup([name]),
// dependsOn), output (type, value or [for ...]), targetScope, metadata,
// type (aliases; object and tuple types are parsed, not checked), and
// import/provider/extension statements (parsed and ignored). Decorators:
// @description @metadata @allowed @minLength @maxLength @minValue @maxValue
// @secure on parameters; @description @secure on outputs; @description and
// @batchSize on resources and modules; @export @sealed @discriminator are
// accepted and ignored; any of them may be written @sys.name.
//
// Expressions: strings in single quotes with Bicep's backslash escapes
// (backslash, quote, n, r, t, $ and u{hex}; unlike ARM, two quotes in a
// row are not an escape) and ${...} interpolation, nested; multi-line
// strings between triple single quotes (no escapes or interpolation; a
// newline right after the opening quotes is dropped); integers; true,
// false, null; objects and arrays with items separated by newlines or
// commas, keys as identifiers or strings; [for ...]
// arrays; operators with Bicep's precedence, loosest first: ?: then ?? || &&
// (== != =~ !~) (< <= > >=) (+ -) (* / %) unary (! -), then member access
// (. and .?), indexing [i], calls f(...), sys.f(...), az.f(...),
// resource.listX(...), and nested resource access parent::child.
// Parentheses and function arguments may span lines.
//
// Names must be declared, as in Bicep; with the AllowUndeclared option an
// undeclared name becomes a string parameter without a default (Unknown
// offline), for snippets that leave their parameters out.
//
// Not supported, each a located error: user-defined functions (func),
// lambdas and the functions that take them (filter, map, reduce, sort,
// toObject, groupBy, mapValues), load*Content and loadFileAsBase64 (they
// read files), decimal numbers, the spread operator, assert, targetScope
// other than resourceGroup, scope: other than a resource of the same file
// or resourceGroup() (for modules also resourceGroup(name), for existing
// resources also resourceGroup([sub, ]name)), parent: or
// nested resources together with resource loops, filtered loops
// ([for ...: if]) outside resource and module bodies, for-expressions
// inside other expressions (only a whole property, variable, output,
// module parameter, resource or module value may be a loop, and not a
// top-level resource property such as tags: ARM has no loop there), members of
// module loops, resource-typed outputs, resource methods other than list*,
// union types other than unions of literals, and unknown type names.
// Decorators on object properties are rejected, as Bicep does.
//
// # Lowering
//
// The template is languageVersion 2.0: resources is an object keyed by
// symbolic name (nested child resources as "parent::child"), and modules
// are resources of type Microsoft.Resources/deployments keyed by their
// symbolic name. Literals stay JSON values (a literal that would read as an
// expression is escaped with "[["); everything else becomes an expression
// string "[...]":
//
//	param p / var v          parameters('p') / variables('v')
//	'a${x}b'                 format('a{0}b', x) ({ and } doubled)
//	! -x                     not(x), sub(0, x); -5 stays the integer -5
//	+ - * / %                add sub mul div mod
//	< <= > >= == !=          less lessOrEquals greater greaterOrEquals equals not(equals)
//	=~ !~                    equals(toLower(a), toLower(b)), not(...)
//	&& || ??                 and or coalesce
//	c ? a : b                if(c, a, b)
//	x.?y                     if(contains(x, 'y'), x.y, null())
//	{...} [...] in an expression  createObject(...) createArray(...), json('{}') json('[]') when empty
//	sys.f(...) any(x)        f(...), x
//	acr.id                   resourceId('type', name...), extensionResourceId(scopeId, ...) with scope:
//	acr.name                 the name as declared (a child's own name, not parent/child)
//	acr.type acr.apiVersion  literals
//	acr.properties.x         reference('acr').x (Unknown when checking offline)
//	acr.location, .sku, ...  reference('acr', apiVersion, 'full').location
//	acr.listKeys()           listKeys(id, apiVersion)
//	m.outputs.x              reference('m').outputs.x.value
//	acr[i].id / .properties  the element's name with the loop variable bound to coll[i];
//	                         reference(resourceId(...), apiVersion) for properties
//
// A resource keeps its body properties; name is the full name
// (format('{0}/{1}', parentName, name) for children), type the full type
// (a nested child's short type is appended to its parent's), parent and
// scope are consumed (scope: r becomes the relative form
// "Namespace/type/{name}" ARM accepts; an existing resource's
// scope: resourceGroup([sub, ]name) becomes a resource group id scope and
// resourceId(sub, name, ...) ids), "existing": true marks existing
// resources. if (c) becomes "condition" (a nested child also takes its
// parent's, joined with and()); a resource or module loop becomes
// "copy": {name: symbolic, count: length(coll)} with the item bound to
// coll[copyIndex()] and the index to copyIndex(), and @batchSize(n) makes it
// serial with that batch size. A property whose value is [for ...] becomes
// a property copy loop named after the property (copyIndex('prop')), a
// variable loop a variables.copy entry, an output loop an output copy.
// dependsOn lists the explicit entries, the parent, the scope resource and
// every non-existing resource or module the body refers to. A local module
// is read through the Loader (its path joined to the declaring file's
// directory), compiled recursively and inlined as properties.template with
// expressionEvaluationOptions.scope "inner" and parameters {name: {value}};
// a registry module (br:, br/, ts:, ts/) becomes a templateLink, which the
// evaluator cannot read offline, so its contents stay unknown. Decorators
// on parameters become metadata.description, metadata, allowedValues,
// minLength, maxLength, minValue, maxValue and securestring/secureObject;
// a union of literal types becomes allowedValues. Nullable types (T?) are
// parsed but not lowered: a missing nullable parameter is Unknown in check
// mode rather than null.
//
// # Limits
//
// Expressions, objects, arrays, types and interpolations nest at most 128
// deep; a file has at most 10 million tokens; modules nest 8 deep, 800 in
// all per Compile, and a module that includes itself is an error; parent:
// chains are at most 16 long; inlined resource names may expand to at most
// 16 MiB plus 4 bytes per input byte, which stops names built from names
// from growing exponentially. Exceeding a limit is a located error.
package bicep
