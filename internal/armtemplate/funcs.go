package armtemplate

import (
	"crypto/sha1" //nolint:gosec // guid() is a name-based UUID (RFC 4122 version 5), which is defined over SHA-1; not used for security
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/moat-registry/moat/internal/armtemplate/expr"
)

type fnDef struct {
	min, max  int // arity; max < 0 means variadic
	fn        func(c *ectx, n *expr.Call, args []any) (any, error)
	lazy      func(c *ectx, n *expr.Call) (any, error) // evaluates its own arguments
	unknownOK bool                                     // fn handles Unknown arguments itself
}

var builtins map[string]fnDef

func init() {
	unknownFn := func(reason string) fnDef {
		return fnDef{min: 0, max: -1, lazy: func(c *ectx, n *expr.Call) (any, error) {
			return c.unknown(n, reason), nil
		}}
	}
	builtins = map[string]fnDef{
		// Template data.
		"parameters": {min: 1, max: 1, fn: fnParameters},
		"variables":  {min: 1, max: 1, fn: fnVariables},
		"copyindex":  {min: 0, max: 2, fn: fnCopyIndex},
		// Deployment context.
		"resourcegroup":          {min: 0, max: 0, fn: fnResourceGroup},
		"subscription":           {min: 0, max: 0, fn: fnSubscription},
		"deployment":             {min: 0, max: 0, fn: fnDeployment},
		"resourceid":             {min: 2, max: -1, fn: fnResourceID},
		"subscriptionresourceid": {min: 2, max: -1, fn: fnSubscriptionResourceID},
		"tenantresourceid":       {min: 2, max: -1, fn: fnTenantResourceID},
		"extensionresourceid":    {min: 3, max: -1, fn: fnExtensionResourceID},
		// Live values.
		"reference":       {min: 1, max: 3, fn: fnReference},
		"environment":     unknownFn("environment() depends on the cloud the template is deployed to"),
		"pickzones":       unknownFn("pickZones() needs the live resource provider"),
		"managementgroup": unknownFn("managementGroup() needs a live deployment"),
		"tenant":          unknownFn("tenant() needs a live deployment"),
		"deployer":        unknownFn("deployer() needs a live deployment"),
		"providers":       unknownFn("providers() needs the live resource provider"),
		"resourceinfo":    unknownFn("resourceInfo() needs a live deployment"),
		"newguid":         {min: 0, max: 0, fn: fnNewGUID},
		"utcnow":          {min: 0, max: 1, fn: fnUTCNow},
		// Logic.
		"if":       {min: 3, max: 3, lazy: fnIf},
		"and":      {min: 2, max: -1, lazy: fnAnd},
		"or":       {min: 2, max: -1, lazy: fnOr},
		"not":      {min: 1, max: 1, fn: fnNot},
		"equals":   {min: 2, max: 2, fn: func(c *ectx, _ *expr.Call, a []any) (any, error) { return equalW(a[0], a[1], c.ev.work), nil }},
		"coalesce": {min: 1, max: -1, lazy: fnCoalesce},
		"true":     {min: 0, max: 0, fn: func(*ectx, *expr.Call, []any) (any, error) { return true, nil }},
		"false":    {min: 0, max: 0, fn: func(*ectx, *expr.Call, []any) (any, error) { return false, nil }},
		"null":     {min: 0, max: 0, fn: func(*ectx, *expr.Call, []any) (any, error) { return nil, nil }},
		// Comparison.
		"less":            {min: 2, max: 2, fn: cmpFn(func(r int) bool { return r < 0 })},
		"lessorequals":    {min: 2, max: 2, fn: cmpFn(func(r int) bool { return r <= 0 })},
		"greater":         {min: 2, max: 2, fn: cmpFn(func(r int) bool { return r > 0 })},
		"greaterorequals": {min: 2, max: 2, fn: cmpFn(func(r int) bool { return r >= 0 })},
		// Numbers.
		"add": {min: 2, max: 2, fn: arith('+')},
		"sub": {min: 2, max: 2, fn: arith('-')},
		"mul": {min: 2, max: 2, fn: arith('*')},
		"div": {min: 2, max: 2, fn: arith('/')},
		"mod": {min: 2, max: 2, fn: arith('%')},
		"min": {min: 1, max: -1, fn: minMax(true)},
		"max": {min: 1, max: -1, fn: minMax(false)},
		"int": {min: 1, max: 1, fn: fnInt},
		// Strings.
		"concat":         {min: 1, max: -1, fn: fnConcat},
		"format":         {min: 1, max: -1, fn: fnFormat},
		"tolower":        {min: 1, max: 1, fn: strFn(strings.ToLower)},
		"toupper":        {min: 1, max: 1, fn: strFn(strings.ToUpper)},
		"trim":           {min: 1, max: 1, fn: strFn(strings.TrimSpace)},
		"replace":        {min: 3, max: 3, fn: fnReplace},
		"split":          {min: 2, max: 2, fn: fnSplit},
		"substring":      {min: 1, max: 3, fn: fnSubstring},
		"startswith":     {min: 2, max: 2, fn: fnStartsWith},
		"endswith":       {min: 2, max: 2, fn: fnEndsWith},
		"indexof":        {min: 2, max: 2, fn: fnIndexOf(false)},
		"lastindexof":    {min: 2, max: 2, fn: fnIndexOf(true)},
		"padleft":        {min: 2, max: 3, fn: fnPadLeft},
		"string":         {min: 1, max: 1, fn: fnString},
		"uniquestring":   {min: 1, max: -1, fn: fnUniqueString},
		"guid":           {min: 1, max: -1, fn: fnGUID},
		"base64":         {min: 1, max: 1, fn: fnBase64},
		"base64tostring": {min: 1, max: 1, fn: fnBase64ToString},
		"bool":           {min: 1, max: 1, fn: fnBool},
		"json":           {min: 1, max: 1, fn: fnJSON},
		// Collections.
		"empty":        {min: 1, max: 1, fn: fnEmpty},
		"contains":     {min: 2, max: 2, fn: fnContains},
		"union":        {min: 1, max: -1, fn: fnUnion},
		"intersection": {min: 1, max: -1, fn: fnIntersection},
		"length":       {min: 1, max: 1, fn: fnLength},
		"createarray":  {min: 0, max: -1, fn: func(_ *ectx, _ *expr.Call, a []any) (any, error) { return append([]any{}, a...), nil }, unknownOK: true},
		"createobject": {min: 0, max: -1, fn: fnCreateObject, unknownOK: true},
		"array":        {min: 1, max: 1, fn: fnArray, unknownOK: true},
		"first":        {min: 1, max: 1, fn: fnFirstLast(true)},
		"last":         {min: 1, max: 1, fn: fnFirstLast(false)},
		"range":        {min: 2, max: 2, fn: fnRange},
		"skip":         {min: 2, max: 2, fn: fnSkipTake(true)},
		"take":         {min: 2, max: 2, fn: fnSkipTake(false)},
		"items":        {min: 1, max: 1, fn: fnItems},
		"objectkeys":   {min: 1, max: 1, fn: fnObjectKeys},
	}
}

func argErr(n *expr.Call, i int, want string, got any) error {
	return fmt.Errorf("%w: argument %d of %s must be %s, got %s", ErrType, i+1, n.Name, want, typeName(got))
}

func asString(n *expr.Call, args []any, i int) (string, error) {
	s, ok := args[i].(string)
	if !ok {
		return "", argErr(n, i, "a string", args[i])
	}
	return s, nil
}

func asInt(n *expr.Call, args []any, i int) (int64, error) {
	switch v := args[i].(type) {
	case int64:
		return v, nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), nil
		}
	}
	return 0, argErr(n, i, "an integer", args[i])
}

func asBool(n *expr.Call, v any, i int) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, argErr(n, i, "a boolean", v)
	}
	return b, nil
}

func (c *ectx) checkLen(s string) (string, error) {
	if len(s) > c.ev.opts.MaxStringLength {
		return "", fmt.Errorf("%w: string longer than %d bytes", ErrLimit, c.ev.opts.MaxStringLength)
	}
	return s, nil
}

func (c *ectx) checkArray(a []any) ([]any, error) {
	if len(a) > c.ev.opts.MaxArrayLength {
		return nil, fmt.Errorf("%w: array longer than %d elements", ErrLimit, c.ev.opts.MaxArrayLength)
	}
	return a, nil
}

func fnParameters(c *ectx, n *expr.Call, a []any) (any, error) {
	name, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	return c.ev.parameter(name)
}

func fnVariables(c *ectx, n *expr.Call, a []any) (any, error) {
	name, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	return c.ev.variable(name)
}

func fnCopyIndex(c *ectx, n *expr.Call, a []any) (any, error) {
	loop := ""
	var offset int64
	switch len(a) {
	case 1:
		switch v := a[0].(type) {
		case string:
			loop = v
		case int64:
			offset = v
		default:
			return nil, argErr(n, 0, "a loop name or an offset", v)
		}
	case 2:
		s, err := asString(n, a, 0)
		if err != nil {
			return nil, err
		}
		loop = s
		if offset, err = asInt(n, a, 1); err != nil {
			return nil, err
		}
	}
	i, ok := c.sc.loops[strings.ToLower(loop)]
	if !ok {
		if loop == "" {
			return nil, fmt.Errorf("%w: copyIndex() used outside a copy loop", ErrInvalidTemplate)
		}
		return nil, fmt.Errorf("%w: copyIndex('%s') used outside the copy loop %q", ErrInvalidTemplate, loop, loop)
	}
	if i < 0 {
		return c.unknown(n, "the copy count could not be determined"), nil
	}
	return int64(i) + offset, nil
}

func fnResourceGroup(c *ectx, _ *expr.Call, _ []any) (any, error) {
	o := c.ev.opts
	tags := map[string]any{}
	for k, v := range o.ResourceGroupTags {
		tags[k] = v
	}
	return map[string]any{
		"id":         c.ev.rgID(),
		"name":       o.ResourceGroup,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   o.Location,
		"managedBy":  nil,
		"tags":       tags,
		"properties": map[string]any{"provisioningState": "Succeeded"},
	}, nil
}

func fnSubscription(c *ectx, _ *expr.Call, _ []any) (any, error) {
	o := c.ev.opts
	return map[string]any{
		"id":             "/subscriptions/" + o.SubscriptionID,
		"subscriptionId": o.SubscriptionID,
		"tenantId":       o.TenantID,
		"displayName":    o.SubscriptionName,
	}, nil
}

func fnDeployment(c *ectx, _ *expr.Call, _ []any) (any, error) {
	return map[string]any{
		"name":     c.ev.opts.DeploymentName,
		"location": "",
		"properties": map[string]any{
			"template": map[string]any{
				"contentVersion": c.ev.tpl.ContentVersion,
			},
			"mode":              "Incremental",
			"provisioningState": "Accepted",
		},
	}, nil
}

// splitResourceArgs finds the resource type among resourceId()'s arguments
// (the first containing '/') and returns the arguments before it and the name
// segments after it.
func splitResourceArgs(n *expr.Call, a []any) (prefix []string, typ string, names []string, err error) {
	ti := -1
	strs := make([]string, len(a))
	for i := range a {
		s, err := asString(n, a, i)
		if err != nil {
			return nil, "", nil, err
		}
		strs[i] = s
		if ti < 0 && strings.Contains(s, "/") {
			ti = i
		}
	}
	if ti < 0 {
		return nil, "", nil, fmt.Errorf("%w: %s: no argument is a resource type (Namespace/type)", ErrInvalidArgument, n.Name)
	}
	for _, s := range strs[ti+1:] {
		names = append(names, strings.Split(s, "/")...)
	}
	return strs[:ti], strs[ti], names, nil
}

func fnResourceID(c *ectx, n *expr.Call, a []any) (any, error) {
	prefix, typ, names, err := splitResourceArgs(n, a)
	if err != nil {
		return nil, err
	}
	sub, rg := c.ev.opts.SubscriptionID, c.ev.opts.ResourceGroup
	switch len(prefix) {
	case 0:
	case 1:
		rg = prefix[0]
	case 2:
		sub, rg = prefix[0], prefix[1]
	default:
		return nil, fmt.Errorf("%w: resourceId takes at most a subscription and a resource group before the type", ErrArity)
	}
	return typedID("/subscriptions/"+sub+"/resourceGroups/"+rg, typ, names)
}

func fnSubscriptionResourceID(c *ectx, n *expr.Call, a []any) (any, error) {
	prefix, typ, names, err := splitResourceArgs(n, a)
	if err != nil {
		return nil, err
	}
	sub := c.ev.opts.SubscriptionID
	switch len(prefix) {
	case 0:
	case 1:
		sub = prefix[0]
	default:
		return nil, fmt.Errorf("%w: subscriptionResourceId takes at most a subscription before the type", ErrArity)
	}
	return typedID("/subscriptions/"+sub, typ, names)
}

func fnTenantResourceID(_ *ectx, n *expr.Call, a []any) (any, error) {
	prefix, typ, names, err := splitResourceArgs(n, a)
	if err != nil {
		return nil, err
	}
	if len(prefix) != 0 {
		return nil, fmt.Errorf("%w: tenantResourceId takes the type first", ErrArity)
	}
	return typedID("", typ, names)
}

func fnExtensionResourceID(_ *ectx, n *expr.Call, a []any) (any, error) {
	base, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	prefix, typ, names, err := splitResourceArgs(n, a[1:])
	if err != nil {
		return nil, err
	}
	if len(prefix) != 0 {
		return nil, fmt.Errorf("%w: extensionResourceId takes the scope then the type", ErrArity)
	}
	return typedID(strings.TrimSuffix(base, "/"), typ, names)
}

// typedID builds base/providers/Namespace/t1/n1/t2/n2. A "providers" type
// segment (the classic form of extension resources such as
// registries/providers/diagnosticSettings) takes the next name segment as the
// extension's namespace.
func typedID(base, typ string, names []string) (string, error) {
	segs := strings.Split(typ, "/")
	if len(segs) < 2 || segs[0] == "" {
		return "", fmt.Errorf("%w: %q is not a resource type (Namespace/type)", ErrInvalidArgument, typ)
	}
	types := segs[1:]
	if len(names) != len(types) {
		return "", fmt.Errorf("%w: resource type %q needs %d name segment(s), got %d (%s)", ErrInvalidArgument, typ, len(types), len(names), strings.Join(names, "/"))
	}
	var b strings.Builder
	b.WriteString(base)
	b.WriteString("/providers/")
	b.WriteString(segs[0])
	for i, t := range types {
		b.WriteByte('/')
		b.WriteString(t)
		b.WriteByte('/')
		b.WriteString(names[i])
	}
	return b.String(), nil
}

// fnReference asks Options.Reference, when the caller supplied one (a
// deployer that has deployed the target); otherwise the value is Unknown.
func fnReference(c *ectx, n *expr.Call, a []any) (any, error) {
	target, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	apiVersion, full := "", false
	if len(a) > 1 {
		if apiVersion, err = asString(n, a, 1); err != nil {
			return nil, err
		}
	}
	if len(a) > 2 {
		s, err := asString(n, a, 2)
		if err != nil {
			return nil, err
		}
		full = strings.EqualFold(s, "full")
	}
	if c.ev.opts.Reference != nil {
		if v, ok := c.ev.opts.Reference(target, apiVersion, full); ok {
			return Normalize(v)
		}
	}
	return c.unknown(n, "reference() needs a live deployment"), nil
}

func fnNewGUID(c *ectx, n *expr.Call, _ []any) (any, error) {
	if c.ev.opts.NewGUID == nil {
		return c.unknown(n, "newGuid() differs on every deployment"), nil
	}
	return c.ev.opts.NewGUID(), nil
}

func fnUTCNow(c *ectx, n *expr.Call, a []any) (any, error) {
	if c.ev.opts.Now.IsZero() {
		return c.unknown(n, "utcNow() is the deployment time"), nil
	}
	f := "yyyyMMddTHHmmssZ"
	if len(a) == 1 {
		s, err := asString(n, a, 0)
		if err != nil {
			return nil, err
		}
		f = s
	}
	return formatDotNetTime(c.ev.opts.Now.UTC(), f)
}

func fnIf(c *ectx, n *expr.Call) (any, error) {
	cond, err := c.eval(n.Args[0])
	if err != nil {
		return nil, err
	}
	if u, ok := cond.(*Unknown); ok {
		a, err := c.eval(n.Args[1])
		if err != nil {
			return nil, err
		}
		b, err := c.eval(n.Args[2])
		if err != nil {
			return nil, err
		}
		if equalW(a, b, c.ev.work) {
			return a, nil
		}
		return u, nil
	}
	b, err := asBool(n, cond, 0)
	if err != nil {
		return nil, err
	}
	if b {
		return c.eval(n.Args[1])
	}
	return c.eval(n.Args[2])
}

// fnAnd and fnOr short-circuit; an Unknown operand only matters when no known
// operand decides the result.
func fnAnd(c *ectx, n *expr.Call) (any, error) { return logic(c, n, false) }
func fnOr(c *ectx, n *expr.Call) (any, error)  { return logic(c, n, true) }

func logic(c *ectx, n *expr.Call, decider bool) (any, error) {
	var unk *Unknown
	for i, a := range n.Args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		if u, ok := v.(*Unknown); ok {
			if unk == nil {
				unk = u
			}
			continue
		}
		b, err := asBool(n, v, i)
		if err != nil {
			return nil, err
		}
		if b == decider {
			return decider, nil
		}
	}
	if unk != nil {
		return unk, nil
	}
	return !decider, nil
}

func fnNot(_ *ectx, n *expr.Call, a []any) (any, error) {
	b, err := asBool(n, a[0], 0)
	if err != nil {
		return nil, err
	}
	return !b, nil
}

func fnCoalesce(c *ectx, n *expr.Call) (any, error) {
	for _, a := range n.Args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		if v != nil {
			// An Unknown first: we cannot tell whether it is null.
			return v, nil
		}
	}
	return nil, nil
}

func compare(n *expr.Call, a, b any) (int, error) {
	switch x := a.(type) {
	case int64, float64:
		xf, _ := toFloat(x)
		yf, ok := toFloat(b)
		if !ok {
			return 0, argErr(n, 1, "a number", b)
		}
		switch {
		case xf < yf:
			return -1, nil
		case xf > yf:
			return 1, nil
		}
		return 0, nil
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, argErr(n, 1, "a string", b)
		}
		return strings.Compare(x, y), nil
	}
	return 0, argErr(n, 0, "a number or a string", a)
}

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case int64:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

func cmpFn(ok func(int) bool) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		r, err := compare(n, a[0], a[1])
		if err != nil {
			return nil, err
		}
		return ok(r), nil
	}
}

func arith(op byte) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		x, err := asInt(n, a, 0)
		if err != nil {
			return nil, err
		}
		y, err := asInt(n, a, 1)
		if err != nil {
			return nil, err
		}
		switch op {
		case '+':
			return x + y, nil
		case '-':
			return x - y, nil
		case '*':
			return x * y, nil
		case '/', '%':
			if y == 0 {
				return nil, fmt.Errorf("%w: division by zero", ErrInvalidArgument)
			}
			if op == '/' {
				return x / y, nil
			}
			return x % y, nil
		}
		return nil, fmt.Errorf("%w: operator %c", ErrInvalidTemplate, op)
	}
}

func minMax(isMin bool) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		vals := a
		if len(a) == 1 {
			arr, ok := a[0].([]any)
			if !ok {
				return nil, argErr(n, 0, "an array or integers", a[0])
			}
			vals = arr
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("%w: %s of an empty array", ErrInvalidArgument, n.Name)
		}
		var best int64
		for i := range vals {
			v, err := asInt(n, vals, i)
			if err != nil {
				return nil, err
			}
			if i == 0 || (isMin && v < best) || (!isMin && v > best) {
				best = v
			}
		}
		return best, nil
	}
}

func fnInt(_ *ectx, n *expr.Call, a []any) (any, error) {
	switch v := a[0].(type) {
	case int64:
		return v, nil
	case float64:
		return int64(v), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not an integer", ErrInvalidArgument, v)
		}
		return i, nil
	}
	return nil, argErr(n, 0, "a string or a number", a[0])
}

func fnConcat(c *ectx, n *expr.Call, a []any) (any, error) {
	if _, ok := a[0].([]any); ok {
		var out []any
		for i, v := range a {
			if v == nil {
				continue
			}
			arr, ok := v.([]any)
			if !ok {
				return nil, argErr(n, i, "an array (the first argument is one)", v)
			}
			out = append(out, arr...)
			if _, err := c.checkArray(out); err != nil {
				return nil, err
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	var b strings.Builder
	for i, v := range a {
		if _, ok := v.([]any); ok {
			return nil, argErr(n, i, "a string (the first argument is one)", v)
		}
		s, err := scalarTextW(v, c.ev.work)
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
		if b.Len() > c.ev.opts.MaxStringLength {
			return nil, fmt.Errorf("%w: string longer than %d bytes", ErrLimit, c.ev.opts.MaxStringLength)
		}
	}
	return b.String(), nil
}

func strFn(f func(string) string) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		s, err := asString(n, a, 0)
		if err != nil {
			return nil, err
		}
		return f(s), nil
	}
}

func fnReplace(c *ectx, n *expr.Call, a []any) (any, error) {
	var s [3]string
	for i := range s {
		v, err := asString(n, a, i)
		if err != nil {
			return nil, err
		}
		s[i] = v
	}
	if s[1] == "" {
		return nil, fmt.Errorf("%w: replace: the string to replace is empty", ErrInvalidArgument)
	}
	if cnt := strings.Count(s[0], s[1]); cnt > 0 && len(s[2]) > len(s[1]) &&
		len(s[0])+cnt*(len(s[2])-len(s[1])) > c.ev.opts.MaxStringLength {
		return nil, fmt.Errorf("%w: string longer than %d bytes", ErrLimit, c.ev.opts.MaxStringLength)
	}
	return strings.ReplaceAll(s[0], s[1], s[2]), nil
}

func fnSplit(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	var seps []string
	switch d := a[1].(type) {
	case string:
		seps = []string{d}
	case []any:
		for i := range d {
			x, err := asString(n, d, i)
			if err != nil {
				return nil, err
			}
			seps = append(seps, x)
		}
	default:
		return nil, argErr(n, 1, "a string or an array of strings", d)
	}
	parts := []string{s}
	for _, sep := range seps {
		if sep == "" {
			continue
		}
		var next []string
		for _, p := range parts {
			next = append(next, strings.Split(p, sep)...)
		}
		parts = next
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// utf16Len and the index functions count UTF-16 code units, as .NET does.
func utf16Units(s string) []uint16 { return utf16.Encode([]rune(s)) }

func fnSubstring(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	u := utf16Units(s)
	start, length := int64(0), int64(-1)
	if len(a) > 1 {
		if start, err = asInt(n, a, 1); err != nil {
			return nil, err
		}
	}
	if len(a) > 2 {
		if length, err = asInt(n, a, 2); err != nil {
			return nil, err
		}
	}
	if start < 0 || start > int64(len(u)) {
		return nil, fmt.Errorf("%w: substring start %d is outside the string of length %d", ErrInvalidArgument, start, len(u))
	}
	if length < 0 {
		if len(a) > 2 {
			return nil, fmt.Errorf("%w: substring length %d is negative", ErrInvalidArgument, length)
		}
		length = int64(len(u)) - start
	}
	if length > int64(len(u))-start {
		return nil, fmt.Errorf("%w: substring(%d, %d) runs past the end of a string of length %d", ErrInvalidArgument, start, length, len(u))
	}
	return string(utf16.Decode(u[start : start+length])), nil
}

func fnStartsWith(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	p, err := asString(n, a, 1)
	if err != nil {
		return nil, err
	}
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p), nil
}

func fnEndsWith(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	p, err := asString(n, a, 1)
	if err != nil {
		return nil, err
	}
	return len(s) >= len(p) && strings.EqualFold(s[len(s)-len(p):], p), nil
}

func fnIndexOf(last bool) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		s, err := asString(n, a, 0)
		if err != nil {
			return nil, err
		}
		p, err := asString(n, a, 1)
		if err != nil {
			return nil, err
		}
		ls, lp := strings.ToLower(s), strings.ToLower(p)
		var i int
		if last {
			i = strings.LastIndex(ls, lp)
		} else {
			i = strings.Index(ls, lp)
		}
		if i < 0 {
			return int64(-1), nil
		}
		return int64(len(utf16Units(ls[:i]))), nil
	}
}

func fnPadLeft(c *ectx, n *expr.Call, a []any) (any, error) {
	s, err := scalarText(a[0])
	if err != nil {
		return nil, err
	}
	total, err := asInt(n, a, 1)
	if err != nil {
		return nil, err
	}
	pad := " "
	if len(a) > 2 {
		if pad, err = asString(n, a, 2); err != nil {
			return nil, err
		}
		if len([]rune(pad)) != 1 {
			return nil, fmt.Errorf("%w: padLeft needs a single padding character", ErrInvalidArgument)
		}
	}
	if total > int64(c.ev.opts.MaxStringLength) {
		return nil, fmt.Errorf("%w: padLeft to %d characters", ErrLimit, total)
	}
	have := int64(len(utf16Units(s)))
	if have >= total {
		return s, nil
	}
	return strings.Repeat(pad, int(total-have)) + s, nil
}

func fnString(c *ectx, _ *expr.Call, a []any) (any, error) {
	s, err := scalarTextW(a[0], c.ev.work)
	if err != nil {
		return nil, err
	}
	if a[0] == nil {
		s = "null"
	}
	return c.checkLen(s)
}

func fnUniqueString(_ *ectx, n *expr.Call, a []any) (any, error) {
	parts := make([]string, len(a))
	for i := range a {
		s, err := asString(n, a, i)
		if err != nil {
			return nil, err
		}
		parts[i] = s
	}
	return UniqueString(parts...), nil
}

func fnGUID(_ *ectx, n *expr.Call, a []any) (any, error) {
	parts := make([]string, len(a))
	for i := range a {
		s, err := asString(n, a, i)
		if err != nil {
			return nil, err
		}
		parts[i] = s
	}
	return GUID(parts...), nil
}

// guidNamespace is the namespace ARM's guid() is documented (by community
// reimplementations) to hash its input in.
var guidNamespace = [16]byte{0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30}

// GUID returns the deterministic guid() of the inputs: an RFC 4122 version 5
// UUID of the inputs joined by "-" (UTF-8) in the namespace
// 11fb06fb-712d-4ddd-98c7-e71bbd588830.
func GUID(parts ...string) string {
	h := sha1.New() //nolint:gosec // see the import comment: UUIDv5 is SHA-1 by definition
	h.Write(guidNamespace[:])
	h.Write([]byte(strings.Join(parts, "-")))
	sum := h.Sum(nil)
	sum[6] = (sum[6] & 0x0f) | 0x50
	sum[8] = (sum[8] & 0x3f) | 0x80
	const hexd = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hexd[sum[i]>>4])
		b.WriteByte(hexd[sum[i]&0xf])
	}
	return b.String()
}

func fnBase64(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), nil
}

func fnBase64ToString(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %w", ErrInvalidArgument, err)
	}
	return string(b), nil
}

func fnBool(_ *ectx, n *expr.Call, a []any) (any, error) {
	switch v := a[0].(type) {
	case bool:
		return v, nil
	case int64:
		return v != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%w: %q is not a boolean", ErrInvalidArgument, v)
	}
	return nil, argErr(n, 0, "a string, integer or boolean", a[0])
}

func fnJSON(_ *ectx, n *expr.Call, a []any) (any, error) {
	s, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	v, _, err := ReadJSONC([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: json(): %w", ErrInvalidArgument, err)
	}
	return v, nil
}

func fnEmpty(_ *ectx, n *expr.Call, a []any) (any, error) {
	switch v := a[0].(type) {
	case nil:
		return true, nil
	case string:
		return v == "", nil
	case []any:
		return len(v) == 0, nil
	case map[string]any:
		return len(v) == 0, nil
	}
	return nil, argErr(n, 0, "a string, array or object", a[0])
}

func fnContains(c *ectx, n *expr.Call, a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		s, err := scalarTextW(a[1], c.ev.work)
		if err != nil {
			return nil, err
		}
		return strings.Contains(v, s), nil
	case []any:
		return containsValue(v, a[1], c.ev.work), nil
	case map[string]any:
		k, err := asString(n, a, 1)
		if err != nil {
			return nil, err
		}
		_, ok := lookupKey(v, k)
		return ok, nil
	}
	return nil, argErr(n, 0, "a string, array or object", a[0])
}

func fnUnion(c *ectx, n *expr.Call, a []any) (any, error) {
	switch a[0].(type) {
	case map[string]any:
		out := map[string]any{}
		for i, v := range a {
			o, ok := v.(map[string]any)
			if !ok {
				return nil, argErr(n, i, "an object (the first argument is one)", v)
			}
			mergeDeep(out, o, c.ev.work)
		}
		return out, nil
	case []any:
		var out []any
		seen := newValueSet(c.ev.work)
		for i, v := range a {
			arr, ok := v.([]any)
			if !ok {
				return nil, argErr(n, i, "an array (the first argument is one)", v)
			}
			for _, e := range arr {
				if seen.add(e) {
					out = append(out, e)
				}
				if c.ev.work.exhausted() {
					return nil, errWork
				}
			}
			if _, err := c.checkArray(out); err != nil {
				return nil, err
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	return nil, argErr(n, 0, "an array or an object", a[0])
}

// mergeDeep merges src into dst; nested objects merge recursively, anything
// else is replaced (union()'s documented behaviour).
func mergeDeep(dst, src map[string]any, w *work) {
	for k, v := range src {
		if !w.spend(1) {
			return
		}
		if so, ok := v.(map[string]any); ok {
			if do, ok := dst[k].(map[string]any); ok {
				merged := map[string]any{}
				mergeDeep(merged, do, w)
				mergeDeep(merged, so, w)
				dst[k] = merged
				continue
			}
		}
		dst[k] = v
	}
}

// valueSet de-duplicates values: scalars by hash, objects and arrays by
// comparison.
type valueSet struct {
	scalars map[scalarKey]bool
	others  []any
	w       *work
}

type scalarKey struct {
	kind byte
	s    string
	n    float64
}

func newValueSet(w *work) *valueSet { return &valueSet{scalars: map[scalarKey]bool{}, w: w} }

// add reports whether v was not in the set yet.
func (vs *valueSet) add(v any) bool {
	var k scalarKey
	switch t := v.(type) {
	case nil:
		k = scalarKey{kind: 'z'}
	case bool:
		k = scalarKey{kind: 'b'}
		if t {
			k.n = 1
		}
	case int64:
		k = scalarKey{kind: 'n', n: float64(t)}
	case float64:
		k = scalarKey{kind: 'n', n: t}
	case string:
		k = scalarKey{kind: 's', s: t}
	default:
		if containsValue(vs.others, v, vs.w) {
			return false
		}
		vs.others = append(vs.others, v)
		return true
	}
	vs.w.spend(1)
	if vs.scalars[k] {
		return false
	}
	vs.scalars[k] = true
	return true
}

func containsValue(arr []any, v any, w *work) bool {
	for _, e := range arr {
		if w.exhausted() {
			return false
		}
		if equalW(e, v, w) {
			return true
		}
	}
	return false
}

func fnIntersection(c *ectx, n *expr.Call, a []any) (any, error) {
	switch first := a[0].(type) {
	case map[string]any:
		out := map[string]any{}
		for k, v := range first {
			all := true
			for i := 1; i < len(a); i++ {
				o, ok := a[i].(map[string]any)
				if !ok {
					return nil, argErr(n, i, "an object", a[i])
				}
				w, ok := o[k]
				if !ok || !equalW(v, w, c.ev.work) {
					all = false
				}
			}
			if all {
				out[k] = v
			}
		}
		return out, nil
	case []any:
		out := []any{}
		for _, e := range first {
			all := true
			for i := 1; i < len(a); i++ {
				arr, ok := a[i].([]any)
				if !ok {
					return nil, argErr(n, i, "an array", a[i])
				}
				if !containsValue(arr, e, c.ev.work) {
					all = false
				}
			}
			if all && !containsValue(out, e, c.ev.work) {
				out = append(out, e)
			}
		}
		return out, nil
	}
	return nil, argErr(n, 0, "an array or an object", a[0])
}

func fnLength(_ *ectx, n *expr.Call, a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		return int64(len(utf16Units(v))), nil
	case []any:
		return int64(len(v)), nil
	case map[string]any:
		return int64(len(v)), nil
	}
	return nil, argErr(n, 0, "a string, array or object", a[0])
}

func fnCreateObject(_ *ectx, n *expr.Call, a []any) (any, error) {
	if len(a)%2 != 0 {
		return nil, fmt.Errorf("%w: createObject needs key/value pairs, got %d arguments", ErrArity, len(a))
	}
	out := make(map[string]any, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		if u, ok := a[i].(*Unknown); ok {
			return u, nil
		}
		k, err := asString(n, a, i)
		if err != nil {
			return nil, err
		}
		out[k] = a[i+1]
	}
	return out, nil
}

func fnArray(_ *ectx, _ *expr.Call, a []any) (any, error) {
	switch v := a[0].(type) {
	case []any:
		return v, nil
	case *Unknown:
		return v, nil
	}
	return []any{a[0]}, nil
}

func fnFirstLast(first bool) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		switch v := a[0].(type) {
		case string:
			if v == "" {
				return "", nil
			}
			u := utf16Units(v)
			if first {
				return string(utf16.Decode(u[:1])), nil
			}
			return string(utf16.Decode(u[len(u)-1:])), nil
		case []any:
			if len(v) == 0 {
				return nil, nil
			}
			if first {
				return v[0], nil
			}
			return v[len(v)-1], nil
		}
		return nil, argErr(n, 0, "a string or an array", a[0])
	}
}

func fnRange(c *ectx, n *expr.Call, a []any) (any, error) {
	start, err := asInt(n, a, 0)
	if err != nil {
		return nil, err
	}
	count, err := asInt(n, a, 1)
	if err != nil {
		return nil, err
	}
	if count < 0 || count > 10000 || count > int64(c.ev.opts.MaxArrayLength) {
		return nil, fmt.Errorf("%w: range count %d must be between 0 and %d", ErrLimit, count, min(10000, c.ev.opts.MaxArrayLength))
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

func fnSkipTake(skip bool) func(*ectx, *expr.Call, []any) (any, error) {
	return func(_ *ectx, n *expr.Call, a []any) (any, error) {
		k, err := asInt(n, a, 1)
		if err != nil {
			return nil, err
		}
		cut := func(l int) (int, int) {
			k := max(0, min(int64(l), k))
			if skip {
				return int(k), l
			}
			return 0, int(k)
		}
		switch v := a[0].(type) {
		case string:
			u := utf16Units(v)
			lo, hi := cut(len(u))
			return string(utf16.Decode(u[lo:hi])), nil
		case []any:
			lo, hi := cut(len(v))
			return append([]any{}, v[lo:hi]...), nil
		}
		return nil, argErr(n, 0, "a string or an array", a[0])
	}
}

func fnItems(_ *ectx, n *expr.Call, a []any) (any, error) {
	o, ok := a[0].(map[string]any)
	if !ok {
		return nil, argErr(n, 0, "an object", a[0])
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = map[string]any{"key": k, "value": o[k]}
	}
	return out, nil
}

func fnObjectKeys(_ *ectx, n *expr.Call, a []any) (any, error) {
	o, ok := a[0].(map[string]any)
	if !ok {
		return nil, argErr(n, 0, "an object", a[0])
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out, nil
}
