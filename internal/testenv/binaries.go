package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binaries are the programs the harness runs.
type binaries struct {
	etcd, apiserver, dex, kubelet string
}

// findBinaries locates the pinned upstream binaries, building them with
// hack/build-tools.sh when they are not cached yet, and builds the test
// kubelet. KUBEGATE_TOOLS_CLUSTER_DIR, KUBEGATE_TOOLS_DEX_DIR and
// KUBEGATE_TESTKUBELET override where each comes from.
func findBinaries(workDir string) (binaries, error) {
	root, err := RepoRoot()
	if err != nil {
		return binaries{}, err
	}
	clusterDir, err := toolsDir(root, "cluster", "KUBEGATE_TOOLS_CLUSTER_DIR")
	if err != nil {
		return binaries{}, err
	}
	dexDir, err := toolsDir(root, "dex", "KUBEGATE_TOOLS_DEX_DIR")
	if err != nil {
		return binaries{}, err
	}
	kubelet := os.Getenv("KUBEGATE_TESTKUBELET")
	if kubelet == "" {
		kubelet = filepath.Join(workDir, "bin", "testkubelet")
		cmd := exec.Command("go", "build", "-o", kubelet, "./cmd/testkubelet")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return binaries{}, fmt.Errorf("building the test kubelet: %w\n%s", err, out)
		}
	}
	return binaries{
		etcd:      filepath.Join(clusterDir, "etcd"),
		apiserver: filepath.Join(clusterDir, "kube-apiserver"),
		dex:       filepath.Join(dexDir, "dex"),
		kubelet:   kubelet,
	}, nil
}

func toolsDir(root, module, envVar string) (string, error) {
	if d := os.Getenv(envVar); d != "" {
		return d, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "build-tools.sh"), module)
	cmd.Stderr = os.Stderr // progress of a cold build
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building pinned %s tools: %w", module, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// RepoRoot finds the kubegate module root above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/kubegate/kubegate\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the kubegate repository (no go.mod for github.com/kubegate/kubegate above the working directory)")
		}
		dir = parent
	}
}
