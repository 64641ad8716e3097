package bicep

import (
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"param x string = 'a'\n",
	"var v = '${a}b${ {c: 1}.c }'\n",
	"resource a 'A.B/c@1' existing = {\n  name: 'x'\n}\n",
	"resource r 'A.B/c@1' = [for (x, i) in [1, 2]: if (i > 0) {\n  name: '${x}'\n  resource k 'd@1' = {\n    name: 'k'\n  }\n}]\n",
	"module m './m.bicep' = {\n  name: 'm'\n  params: {\n    a: [for i in range(0, 2): i]\n  }\n}\n",
	"output o string = a.?b ?? c[0].d ? e : f\n",
	"var x = '''\nmulti\n'''\n",
	"@allowed([\n  'a'\n])\n@sys.description('d')\nparam p 'a' | 'b'\n",
	"type t = {\n  a: string?\n  b: int[]\n}\n",
	"var x = '${",
	"/* unterminated",
	"var x = ((((((1",
	"var s = 'a\\u{1F600}\\n\\t'\n",
	"targetScope = 'resourceGroup'\nimport 'az@1.0.0'\n",
}

func FuzzLex(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 1<<16 {
			return
		}
		start := time.Now()
		toks, err := Lex(src, "f.bicep")
		if err == nil && (len(toks) == 0 || toks[len(toks)-1].Kind != EOF) {
			t.Fatal("token stream does not end with EOF")
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("lexing %d bytes took %v", len(src), time.Since(start))
		}
	})
}

// FuzzParse parses and, when that succeeds, lowers: neither may panic, and
// both are bounded.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 1<<16 {
			return
		}
		start := time.Now()
		file, err := Parse(src, "f.bicep")
		if err == nil && file == nil {
			t.Fatal("nil file without error")
		}
		if err == nil {
			loader := func(string) ([]byte, error) { return src, nil }
			_, _ = Compile(src, "f.bicep", WithLoader(loader))
			_, _ = CompileMapped(src, "f.bicep", AllowUndeclared())
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%d bytes took %v", len(src), time.Since(start))
		}
	})
}
