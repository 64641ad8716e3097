package arm

import (
	"net/http"
	"strings"
)

// assignmentFilter is a parsed role-assignment list $filter.
type assignmentFilter struct {
	// atScope keeps only assignments at or above the scope.
	atScope bool
	// principalID keeps only that principal's assignments.
	principalID string
}

// maxFilterLen bounds $filter values; real ones are under 100 characters.
const maxFilterLen = 512

// parseAssignmentFilter reads the $filter ARM accepts on role-assignment
// lists: "atScope()", "principalId eq '{id}'", "assignedTo('{id}')" (moat
// has no groups, so it is principalId), joined by "and". Anything else is
// refused rather than ignored: a filter silently dropped would list more
// than the caller asked for.
func parseAssignmentFilter(s string) (assignmentFilter, error) {
	var f assignmentFilter
	s = strings.TrimSpace(s)
	if s == "" {
		return f, nil
	}
	if len(s) > maxFilterLen {
		return f, badFilter(s, "longer than 512 characters")
	}
	for _, term := range splitAnd(s) {
		term = strings.TrimSpace(term)
		lower := strings.ToLower(term)
		switch {
		case lower == "atscope()":
			f.atScope = true
		case strings.HasPrefix(lower, "principalid eq "):
			id, ok := quoted(strings.TrimSpace(term[len("principalid eq "):]))
			if !ok || id == "" {
				return f, badFilter(s, "principalId eq needs a quoted id: principalId eq '{id}'")
			}
			if f.principalID != "" && !strings.EqualFold(f.principalID, id) {
				return f, badFilter(s, "two different principal ids")
			}
			f.principalID = id
		case strings.HasPrefix(lower, "assignedto(") && strings.HasSuffix(term, ")"):
			id, ok := quoted(strings.TrimSpace(term[len("assignedto(") : len(term)-1]))
			if !ok || id == "" {
				return f, badFilter(s, "assignedTo needs a quoted id: assignedTo('{id}')")
			}
			if f.principalID != "" && !strings.EqualFold(f.principalID, id) {
				return f, badFilter(s, "two different principal ids")
			}
			f.principalID = id
		default:
			return f, badFilter(s, "unsupported term "+quote(term)+"; moat supports atScope(), principalId eq '{id}' and assignedTo('{id}'), joined by and")
		}
	}
	return f, nil
}

// parseDefinitionFilter reads "roleName eq '{name}'" (as az role
// definition list --name sends) or "type eq 'BuiltInRole'"; it returns the
// role name, "" for all.
func parseDefinitionFilter(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if len(s) > maxFilterLen {
		return "", badFilter(s, "longer than 512 characters")
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "rolename eq "):
		name, ok := quoted(strings.TrimSpace(s[len("rolename eq "):]))
		if !ok || name == "" {
			return "", badFilter(s, "roleName eq needs a quoted name: roleName eq 'AcrPull'")
		}
		return name, nil
	case strings.HasPrefix(lower, "type eq "):
		t, ok := quoted(strings.TrimSpace(s[len("type eq "):]))
		if !ok || !strings.EqualFold(t, "BuiltInRole") {
			return "", badFilter(s, "moat has only built-in roles: type eq 'BuiltInRole'")
		}
		return "", nil
	}
	return "", badFilter(s, "moat supports roleName eq '{name}' and type eq 'BuiltInRole'")
}

// splitAnd splits on " and " outside quotes, case-insensitively.
func splitAnd(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			inQuote = !inQuote
		case !inQuote && i+5 <= len(s) && strings.EqualFold(s[i:i+5], " and "):
			out = append(out, s[start:i])
			start = i + 5
			i += 4
		}
	}
	return append(out, s[start:])
}

// quoted unquotes an OData string literal (” stands for ').
func quoted(s string) (string, bool) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", false
	}
	body := s[1 : len(s)-1]
	out := strings.ReplaceAll(body, "''", "'")
	if strings.Count(body, "'") != 2*strings.Count(out, "'") {
		return "", false
	}
	return out, true
}

func badFilter(s, why string) error {
	return &apiError{status: http.StatusBadRequest, code: "InvalidFilter", target: "$filter",
		message: "the $filter " + quote(s) + " is not supported: " + why}
}
