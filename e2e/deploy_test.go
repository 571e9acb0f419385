package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/internal/testenv"
)

// TestDeployManifestsPassServerDryRun: every manifest in deploy/kubernetes
// is accepted by a real apiserver's validation and admission
// (kubectl apply --dry-run=server), in the namespace it names.
func TestDeployManifestsPassServerDryRun(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	files, err := filepath.Glob("../deploy/kubernetes/*.yaml")
	if err != nil || len(files) < 6 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	// The namespace must exist for a dry run of what goes into it.
	mustSucceed(t, runKubectl(t, ctx, env.AdminKubeconfig, protocols[0], nil, "apply", "-f", "../deploy/kubernetes/namespace.yaml"), "create the namespace")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := runKubectl(t, ctx, env.AdminKubeconfig, protocols[0], nil, "apply", "--dry-run=server", "-f", f)
			if r.code != 0 {
				t.Fatalf("kubectl apply --dry-run=server -f %s: %s", f, userOutput(r.stderr))
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs := len(strings.Split(string(b), "\n---\n"))
			if got := strings.Count(r.stdout, "(server dry run)"); got != docs {
				t.Errorf("%s: %d objects accepted, want %d:\n%s", f, got, docs, r.stdout)
			}
		})
	}
}
