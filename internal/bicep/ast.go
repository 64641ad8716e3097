package bicep

// File is a parsed Bicep file.
type File struct {
	Name  string
	Decls []Decl
}

// Decl is a top-level statement.
type Decl interface{ declPos() Pos }

// Decorator is @name(args) or @ns.name(args) before a declaration.
type Decorator struct {
	Pos       Pos
	Namespace string
	Name      string
	Args      []Expr
}

// ParamDecl is `param name type [= default]`.
type ParamDecl struct {
	Pos        Pos
	Decorators []*Decorator
	Name       string
	Type       *TypeExpr
	Default    Expr
}

// VarDecl is `var name = value`.
type VarDecl struct {
	Pos        Pos
	Decorators []*Decorator
	Name       string
	Value      Expr
}

// ResourceDecl is `resource name 'type@api' [existing] = body`. Body is an
// *ObjectLit, an *IfBody or a *ForExpr whose body is one of those.
type ResourceDecl struct {
	Pos        Pos
	Decorators []*Decorator
	Name       string
	Type       string
	APIVersion string
	Existing   bool
	Body       Expr
}

// ModuleDecl is `module name 'path' = body`.
type ModuleDecl struct {
	Pos        Pos
	Decorators []*Decorator
	Name       string
	Path       string
	Body       Expr
}

// OutputDecl is `output name type = value`.
type OutputDecl struct {
	Pos        Pos
	Decorators []*Decorator
	Name       string
	Type       *TypeExpr
	Value      Expr
}

// TargetScopeDecl is `targetScope = value`.
type TargetScopeDecl struct {
	Pos   Pos
	Value Expr
}

// MetadataDecl is `metadata name = value`.
type MetadataDecl struct {
	Pos   Pos
	Name  string
	Value Expr
}

// ImportDecl is an import, provider or extension statement; it is parsed
// and ignored.
type ImportDecl struct {
	Pos Pos
}

// TypeDecl is `type name = typeExpr`.
type TypeDecl struct {
	Pos        Pos
	Decorators []*Decorator
	Name       string
	Type       *TypeExpr
}

// FuncDecl is a user-defined function; it is parsed far enough to report.
type FuncDecl struct {
	Pos  Pos
	Name string
}

func (d *ParamDecl) declPos() Pos       { return d.Pos }
func (d *VarDecl) declPos() Pos         { return d.Pos }
func (d *ResourceDecl) declPos() Pos    { return d.Pos }
func (d *ModuleDecl) declPos() Pos      { return d.Pos }
func (d *OutputDecl) declPos() Pos      { return d.Pos }
func (d *TargetScopeDecl) declPos() Pos { return d.Pos }
func (d *MetadataDecl) declPos() Pos    { return d.Pos }
func (d *ImportDecl) declPos() Pos      { return d.Pos }
func (d *TypeDecl) declPos() Pos        { return d.Pos }
func (d *FuncDecl) declPos() Pos        { return d.Pos }

// TypeExpr is a type as far as lowering needs it.
type TypeExpr struct {
	Pos      Pos
	Name     string // primitive or user-defined type name; "" for the other forms
	Literals []Expr // literal types: 'a' | 'b', 1, true
	Array    bool   // T[] or a tuple type
	Object   bool   // { ... } object type
	Resource bool   // resource 'type@api'
	Union    []*TypeExpr
	Nullable bool
}

// Expr is an expression.
type Expr interface{ exprPos() Pos }

// StringLit is a string; with interpolation, Parts has one more element
// than Exprs and the value is Parts[0] Exprs[0] Parts[1] ...
type StringLit struct {
	Pos   Pos
	Parts []string
	Exprs []Expr
}

// IntLit is an integer literal.
type IntLit struct {
	Pos   Pos
	Value int64
}

// BoolLit is true or false.
type BoolLit struct {
	Pos   Pos
	Value bool
}

// NullLit is null.
type NullLit struct{ Pos Pos }

// Ident is a name: a parameter, variable, resource, module, loop variable
// or (with ::) a nested resource such as parent::child.
type Ident struct {
	Pos  Pos
	Name string
}

// Prop is one property of an object literal; Resource is set instead of
// Key/Value for a nested resource declaration.
type Prop struct {
	Pos      Pos
	Key      string
	Value    Expr
	Resource *ResourceDecl
}

// ObjectLit is { key: value ... }.
type ObjectLit struct {
	Pos   Pos
	Props []*Prop
}

// ArrayLit is [ item ... ].
type ArrayLit struct {
	Pos   Pos
	Items []Expr
}

// ForExpr is [for item in coll: body] or [for (item, index) in coll: body].
type ForExpr struct {
	Pos   Pos
	Item  string // "" when only the index is named
	Index string
	Coll  Expr
	Body  Expr
}

// IfBody is `if (cond) { ... }` as a resource or module body.
type IfBody struct {
	Pos  Pos
	Cond Expr
	Body *ObjectLit
}

// Unary is !x or -x.
type Unary struct {
	Pos Pos
	Op  Kind
	X   Expr
}

// Binary is x op y.
type Binary struct {
	Pos  Pos
	Op   Kind
	X, Y Expr
}

// Ternary is cond ? a : b.
type Ternary struct {
	Pos  Pos
	Cond Expr
	A, B Expr
}

// Member is x.name or x.?name.
type Member struct {
	Pos  Pos
	X    Expr
	Name string
	Safe bool
}

// IndexExpr is x[i].
type IndexExpr struct {
	Pos   Pos
	X     Expr
	Index Expr
}

// Call is name(args), ns.name(args) (sys, az) or x.method(args) (Recv).
type Call struct {
	Pos       Pos
	Namespace string
	Recv      Expr
	Name      string
	Args      []Expr
}

func (e *StringLit) exprPos() Pos { return e.Pos }
func (e *IntLit) exprPos() Pos    { return e.Pos }
func (e *BoolLit) exprPos() Pos   { return e.Pos }
func (e *NullLit) exprPos() Pos   { return e.Pos }
func (e *Ident) exprPos() Pos     { return e.Pos }
func (e *ObjectLit) exprPos() Pos { return e.Pos }
func (e *ArrayLit) exprPos() Pos  { return e.Pos }
func (e *ForExpr) exprPos() Pos   { return e.Pos }
func (e *IfBody) exprPos() Pos    { return e.Pos }
func (e *Unary) exprPos() Pos     { return e.Pos }
func (e *Binary) exprPos() Pos    { return e.Pos }
func (e *Ternary) exprPos() Pos   { return e.Pos }
func (e *Member) exprPos() Pos    { return e.Pos }
func (e *IndexExpr) exprPos() Pos { return e.Pos }
func (e *Call) exprPos() Pos      { return e.Pos }
