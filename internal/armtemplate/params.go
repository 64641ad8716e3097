package armtemplate

import (
	"fmt"
	"strconv"
	"strings"
)

// ParameterFile is a parsed deployment parameter file.
type ParameterFile struct {
	Values    map[string]any // parameter name → value (Unknown for Key Vault references)
	Template  string         // metadata.template, when the file names its template
	Positions *Positions
}

// ParseParameters reads a parameter file (JSON or JSONC): the documented
// form {"$schema", "contentVersion", "parameters": {"x": {"value": ...}}},
// or the bare {"x": {"value": ...}} object az also accepts. A Key Vault
// {"reference": ...} becomes an Unknown.
func ParseParameters(data []byte) (*ParameterFile, error) {
	v, pos, err := ReadJSONC(data)
	if err != nil {
		return nil, err
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Pos: pos.Of(""), Err: fmt.Errorf("%w: a parameter file is a JSON object, got %s", ErrInvalidTemplate, typeName(v))}
	}
	pf := &ParameterFile{Values: map[string]any{}, Positions: pos}
	if mv, _, ok := field(root, "metadata"); ok {
		if mm, ok := mv.(map[string]any); ok {
			if tv, _, ok := field(mm, "template"); ok {
				pf.Template, _ = tv.(string)
			}
		}
	}
	params, base := root, ""
	if pv, pk, ok := field(root, "parameters"); ok {
		pm, ok := pv.(map[string]any)
		if !ok {
			return nil, &Error{Path: pk, Pos: pos.Of(pk), Err: fmt.Errorf("%w: parameters must be an object", ErrInvalidTemplate)}
		}
		params, base = pm, pk
	}
	for name, e := range params {
		if base == "" && (strings.HasPrefix(name, "$") || strings.EqualFold(name, "contentVersion") || strings.EqualFold(name, "metadata")) {
			continue
		}
		path := JoinKey(base, name)
		em, ok := e.(map[string]any)
		if !ok {
			return nil, &Error{Path: path, Pos: pos.Of(path), Err: fmt.Errorf("%w: parameter %q must be an object with a value", ErrInvalidTemplate, name)}
		}
		if val, _, ok := field(em, "value"); ok {
			pf.Values[name] = val
			continue
		}
		if ref, _, ok := field(em, "reference"); ok {
			secret := ""
			if rm, ok := ref.(map[string]any); ok {
				if s, _, ok := field(rm, "secretName"); ok {
					secret, _ = s.(string)
				}
			}
			pf.Values[name] = &Unknown{Expr: "Key Vault secret " + strconv.Quote(secret), Path: path, Pos: pos.Of(path), Reason: "Key Vault references are resolved at deployment"}
			continue
		}
		return nil, &Error{Path: path, Pos: pos.Of(path), Err: fmt.Errorf("%w: parameter %q has neither value nor reference", ErrInvalidTemplate, name)}
	}
	return pf, nil
}

// CoerceParameter converts command-line text (az's --parameters k=v) to the
// type the template declares for that parameter: int, bool, object and array
// are parsed as JSON, strings are taken as they are.
func CoerceParameter(tpl *Template, name, text string) (any, error) {
	pv, _, _ := field(tpl.Root, "parameters")
	pm, _ := pv.(map[string]any)
	d, _, ok := field(pm, name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownParameter, name)
	}
	dm, _ := d.(map[string]any)
	tv, _, _ := field(dm, "type")
	ts, _ := tv.(string)
	switch strings.ToLower(ts) {
	case "string", "securestring":
		return text, nil
	case "int":
		i, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q is an int, %q is not", ErrParameterType, name, text)
		}
		return i, nil
	case "bool":
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%w: parameter %q is a bool, %q is not", ErrParameterType, name, text)
	default:
		v, _, err := ReadJSONC([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q: %w", ErrParameterType, name, err)
		}
		return v, nil
	}
}
