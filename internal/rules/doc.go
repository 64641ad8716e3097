// Package rules owns `moat check`: the rule set that finds insecure
// container registry configurations, the engine that runs it over a
// normalised resource view, and the inputs that produce that view (ARM
// templates with their parameter files, JSON exported from ARM GETs, and the
// live registries of a moat deployment). Output formats live in
// internal/rules/report.
//
// # Semantics
//
// Rule names, preconditions and conditions follow PSRule for Azure so that a
// template gets the same outcome from both tools: field names and string
// values compare case-insensitively; a missing field fails "equals" and
// passes "hasDefault"; a rule whose precondition does not hold reports None.
// Every rule result is one of Pass, Fail, None or CannotDetermine. A value
// that cannot be known offline (an *armtemplate.Unknown: reference(), a
// missing parameter, a Key Vault secret) never passes silently: a rule whose
// answer depends on it reports CannotDetermine with the expression. The
// three-valued logic short-circuits where the answer does not depend on the
// unknown part (anyOf with one passing branch passes).
//
// # Invariants
//
// The engine is pure: the same targets and options give the same results in
// the same order (targets in input order, rules in rule-set order). Targets
// from a template and from a live registry with the same configuration give
// the same outcomes: live registries are rendered through model.Registry.Shape,
// the JSON an ARM GET returns, and go through the same rules.
package rules
