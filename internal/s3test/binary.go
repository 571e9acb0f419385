package s3test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubegate/kubegate/internal/testenv"
)

// ErrNotBuilt is a Start whose versitygw binary is not in the tools cache.
var ErrNotBuilt = errors.New("versitygw is not built: run hack/build-tools.sh versitygw (or make tools)")

// dirEnv overrides the directory holding the versitygw binary.
const dirEnv = "KUBEGATE_TOOLS_VERSITYGW_DIR"

// binary finds the cached versitygw binary, like the test cluster finds its
// binaries, except that it never starts a cold build: hack/build-tools.sh
// --cached fails with status 3 when the module is not in the cache.
func binary() (string, error) {
	if d := os.Getenv(dirEnv); d != "" {
		return filepath.Join(d, "versitygw"), nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "hack", "build-tools.sh"), "--cached", "versitygw")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == 3 {
			return "", ErrNotBuilt
		}
		return "", fmt.Errorf("finding versitygw: %w\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return filepath.Join(lines[len(lines)-1], "versitygw"), nil
}
