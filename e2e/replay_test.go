package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/internal/testenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var metav1GetOptions = metav1.GetOptions{}

// runKubegate runs the kubegate CLI with extra environment.
func runKubegate(t *testing.T, ctx context.Context, env []string, args ...string) result {
	t.Helper()
	bin, err := buildKubegate()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("kubegate %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// TestReplayReproducesSessionOutput: `kubegate replay` of a recorded exec
// prints exactly what kubectl printed, and `kubegate sessions` lists the
// recording with its user, pod and exit code.
func TestReplayReproducesSessionOutput(t *testing.T) {
	g := gateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	script := `for i in 1 2 3; do echo "line $i"; done; printf '\033[1mbold\033[0m tab\there\n'; printf 'no newline'; exit 7`
	r := runKubectl(t, ctx, g.agentKubeconfig, protocols[0], nil, "exec", "toolbox", "--", "sh", "-c", script+" # replay-marker")
	if r.code != 7 {
		t.Fatalf("exec: exit %d, want 7: %s", r.code, userOutput(r.stderr))
	}
	ev := sessionEvent(t, g.auditPath, "replay-marker")
	id := string(ev.AuditID)

	rep := runKubegate(t, ctx, nil, "replay", "--config", g.configPath, "--speed", "1000", id)
	if rep.code != 0 {
		t.Fatalf("kubegate replay: exit %d: %s", rep.code, rep.stderr)
	}
	if rep.stdout != r.stdout {
		t.Fatalf("replay output differs from what kubectl printed:\nreplay %q\nkubectl %q", rep.stdout, r.stdout)
	}

	ls := runKubegate(t, ctx, nil, "sessions", "--config", g.configPath, "--user", "agent@kubegate.test", "--pod", "toolbox")
	var row string
	for _, line := range strings.Split(ls.stdout, "\n") {
		if strings.HasPrefix(line, id) {
			row = line
		}
	}
	if ls.code != 0 || row == "" {
		t.Fatalf("kubegate sessions does not list %s: exit %d\n%s%s", id, ls.code, ls.stdout, ls.stderr)
	}
	if f := strings.Fields(row); f[len(f)-1] != "7" {
		t.Errorf("sessions row %q does not end with exit code 7", row)
	}
}

// TestReplayAPIAndAgainstSandbox: an agent's API calls, found by the token
// it used, print as a timeline and re-issue, in order, in another
// namespace.
func TestReplayAPIAndAgainstSandbox(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tok, err := env.Dex.Token(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	credential := "sha256:" + hex.EncodeToString(sum[:8])
	kubeconfig := filepath.Join(t.TempDir(), "agent-session.kubeconfig")
	if err := env.WriteTokenKubeconfig(kubeconfig, g.url, "dev", tok); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"create", "configmap", "replayed-a", "--from-literal=step=created"},
		{"patch", "configmap", "replayed-a", "--type=merge", "-p", `{"data":{"step":"patched"}}`},
		{"create", "configmap", "replayed-b", "--from-literal=x=y"},
		{"delete", "configmap", "replayed-b"},
		{"get", "configmaps"},
	} {
		mustSucceed(t, runKubectl(t, ctx, kubeconfig, protocols[0], nil, args...), strings.Join(args, " "))
	}

	tl := runKubegate(t, ctx, nil, "replay", "--api", "--config", g.configPath, credential)
	if tl.code != 0 {
		t.Fatalf("replay --api: exit %d: %s", tl.code, tl.stderr)
	}
	// kubectl's own reads (discovery, the get before a patch) come in
	// between; the changes and the list must be there in order.
	var calls []string
	for _, line := range strings.Split(tl.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[1] != "get" && f[2] == "configmaps" {
			calls = append(calls, f[1]+" "+f[3])
		}
	}
	for i, want := range []string{"create dev/replayed-a", "patch dev/replayed-a", "create dev/replayed-b", "delete dev/replayed-b", "list dev/*"} {
		if i >= len(calls) || calls[i] != want {
			t.Fatalf("timeline call %d is not %s:\n%s\nstderr: %s", i, want, tl.stdout, tl.stderr)
		}
	}

	if err := env.CreateNamespace(ctx, "sandbox"); err != nil {
		t.Fatal(err)
	}
	dry := runKubegate(t, ctx, nil, "replay", "--against", env.AdminKubeconfig, "--dry-run=server", "--namespace-map", "dev=sandbox", "--config", g.configPath, credential)
	// A dry run changes nothing, so calls on what an earlier call would
	// have created find nothing (404) and the run reports failures; the
	// creates themselves pass the server's checks.
	if lines := strings.Split(dry.stdout, "\n"); !strings.Contains(lines[0], "POST /api/v1/namespaces/sandbox/configmaps?dryRun=All") || !strings.Contains(lines[0], "201") {
		t.Fatalf("replay --against --dry-run=server: exit %d: %s%s", dry.code, dry.stdout, dry.stderr)
	}
	if _, err := env.Client.CoreV1().ConfigMaps("sandbox").Get(ctx, "replayed-a", metav1GetOptions); err == nil {
		t.Fatalf("a dry run created replayed-a in sandbox")
	}
	real := runKubegate(t, ctx, nil, "replay", "--against", env.AdminKubeconfig, "--namespace-map", "dev=sandbox", "--config", g.configPath, credential)
	if real.code != 0 {
		t.Fatalf("replay --against: exit %d: %s%s", real.code, real.stdout, real.stderr)
	}
	cm, err := env.Client.CoreV1().ConfigMaps("sandbox").Get(ctx, "replayed-a", metav1GetOptions)
	if err != nil || cm.Data["step"] != "patched" {
		t.Fatalf("replayed-a in sandbox: %v %v\nreport:\n%s", err, cm, real.stdout)
	}
	if _, err := env.Client.CoreV1().ConfigMaps("sandbox").Get(ctx, "replayed-b", metav1GetOptions); err == nil {
		t.Errorf("replayed-b was re-created but not deleted; report:\n%s", real.stdout)
	}
	if n := strings.Count(real.stdout, "\n"); n < 4 {
		t.Errorf("the report has %d lines, want one per mutating call:\n%s", n, real.stdout)
	}
}
