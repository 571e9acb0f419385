package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// goPackageDirs lists the directories of the main module that hold Go files,
// relative to the root. Nested modules (tools/) and testdata are skipped.
func goPackageDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != repoRoot && (strings.HasPrefix(name, ".") || name == "testdata" || name == "tools") {
				return filepath.SkipDir
			}
			if path != repoRoot {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(repoRoot, filepath.Dir(path))
			if !slices.Contains(dirs, rel) {
				dirs = append(dirs, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestEveryPackageHasDocGo checks that each package has a doc.go whose
// package comment starts "Package NAME " (or "Command NAME " for commands).
func TestEveryPackageHasDocGo(t *testing.T) {
	dirs := goPackageDirs(t)
	for _, want := range []string{"tlsfront", "upgrade", "k8swire", "cluster", "audit", "bench", "identity", "policy", "gateway"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("top-level package %s is missing", want)
		}
	}
	for _, dir := range dirs {
		path := filepath.Join(repoRoot, dir, "doc.go")
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Errorf("%s: no readable doc.go: %v", dir, err)
			continue
		}
		name := f.Name.Name
		prefix := "Package " + name + " "
		if name == "main" {
			prefix = "Command " + filepath.Base(dir) + " "
		}
		if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), prefix) {
			t.Errorf("%s/doc.go: package comment must start with %q", dir, prefix)
		}
	}
}

// forbiddenImports are imports the pure core packages may not use: they do
// no I/O of their own (STYLE.md, house convention 2).
var forbiddenImports = map[string][]string{
	"k8swire": {"os", "os/exec", "net", "net/http/httptest"},
	"policy":  {"os", "os/exec", "net", "net/http", "net/http/httptest"},
	"cluster": {"os", "os/exec", "net", "net/http", "net/http/httptest"},
}

func TestCorePackagesDoNoIO(t *testing.T) {
	for pkg, banned := range forbiddenImports {
		files, err := filepath.Glob(filepath.Join(repoRoot, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("package %s has no Go files", pkg)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if slices.Contains(banned, p) {
					t.Errorf("%s imports %s; the %s package does no I/O", file, p, pkg)
				}
			}
		}
	}
}
