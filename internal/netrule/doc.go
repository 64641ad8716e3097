// Package netrule owns the network decision of the data plane (DESIGN.md
// §3): whether a request may reach a registry given the endpoint it arrived
// on, the client IP and the kind of caller, before authentication and
// authorization run. It also owns the trusted-services catalogue
// (TrustedServices, ClassifyResource) and the text of the denial
// (DeniedMessage).
//
// Compile builds a Policy once per configuration change from a
// model.Registry and the registry's private endpoints; Decide judges one
// request, in this order, and the first step that applies decides:
//
//  1. private-endpoint: the request arrived on a private endpoint. Allowed
//     iff the endpoint is one of this registry's and its connection is
//     Approved. Firewall rules and publicNetworkAccess do not apply.
//  2. trusted-service: the caller is a trusted service and
//     networkRuleBypassOptions is AzureServices; Registry Tasks only with
//     networkRuleBypassAllowedForTasks true; App Service never. Allowed.
//  3. public-network-access: publicNetworkAccess is Disabled. Denied.
//  4. firewall-default-allow: networkRuleSet.defaultAction is Allow.
//     Allowed. Otherwise firewall-ip-rule: the client IP is inside one of
//     ipRules, allowed; or firewall-default-deny, denied.
//
// IP rules are compiled into two tables of sorted, disjoint ranges — IPv4
// as uint32 pairs, IPv6 as 128-bit pairs — searched by binary search, so a
// decision costs O(log n) and no allocation whatever the number of rules.
// Each range carries the lowest index of the rules covering it, so the rule
// a Decision names is the first matching one in ipRules order, as a scan
// would find. Rules and clients live in one 128-bit space where IPv4 is the
// IPv4-mapped block ::ffff:0:0/96: a client arriving as ::ffff:10.0.0.1 is
// 10.0.0.1, and an IPv6 rule that covers part of that block (::/0,
// ::ffff:10.0.0.0/104) covers those IPv4 clients too. Rule values are the
// ones model.Validate accepts: an address or a CIDR, IPv4 or IPv6, no zone,
// no surrounding space; host bits after the prefix length are masked off
// ("10.1.2.3/8" is 10.0.0.0/8), as netip reads it.
//
// Invariants:
//
//   - Pure: no I/O, no clock, no globals written after init.
//   - A Policy is immutable once Compile returns and safe for concurrent
//     use; Compile copies what it keeps from its arguments.
//   - Fail closed: Compile refuses any setting it cannot judge with
//     certainty (the caller then denies); a zero or invalid client IP, or
//     one with an IPv6 zone, is inside no rule; an endpoint id Compile was
//     not given is denied; the zero Decision denies.
//   - Version changes whenever a setting Decide reads changes, so audit
//     records can name the rule set that decided.
package netrule
