package workflows

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestContractErrorTypesListsEveryConstant reads this package's source for
// every Reason* and Error* string constant and checks that
// ContractErrorTypes lists exactly those values. A constant added to the
// contract without being listed fails here, before a caller can fall
// through to "internal" on it.
func TestContractErrorTypesListsEveryConstant(t *testing.T) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]string{} // value -> constant name
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		{
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if !strings.HasPrefix(name.Name, "Reason") && !strings.HasPrefix(name.Name, "Error") {
							continue
						}
						if i >= len(vs.Values) {
							t.Fatalf("constant %s has no literal value", name.Name)
						}
						lit, ok := vs.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							t.Fatalf("constant %s is not a string literal", name.Name)
						}
						v, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						declared[v] = name.Name
					}
				}
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("found no Reason*/Error* constants: the test reads the wrong files")
	}
	listed := ContractErrorTypes()
	for v, name := range declared {
		if !slices.Contains(listed, v) {
			t.Errorf("%s = %q is not in ContractErrorTypes()", name, v)
		}
	}
	seen := map[string]bool{}
	for _, v := range listed {
		if seen[v] {
			t.Errorf("ContractErrorTypes() lists %q twice", v)
		}
		seen[v] = true
		if _, ok := declared[v]; !ok {
			t.Errorf("ContractErrorTypes() lists %q, which no Reason*/Error* constant declares", v)
		}
	}
}
