package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDemoUpDown drives the demo as a newcomer would: `kubegate demo up`
// returns once ready, the printed kubeconfigs work through kubegate with the
// `kubegate token` exec plugin against the real Dex and a ServiceAccount
// token file, `policy check` explains decisions, and `demo down` stops
// every process.
func TestDemoUpDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "kubegate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/kubegate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubegate: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "demo")
	up := exec.CommandContext(ctx, bin, "demo", "up", "--dir", dir)
	out, err := up.CombinedOutput()
	if err != nil {
		t.Fatalf("demo up: %v\n%s", err, out)
	}
	pidBytes, err := os.ReadFile(dir + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidBytes)))
	stopped := false
	defer func() {
		if !stopped {
			_ = exec.Command(bin, "demo", "down", "--dir", dir).Run()
		}
	}()
	for _, want := range []string{"kubegate demo is up", "agent.kubeconfig", "kubectl get pods -n dev", "kubegate approve ID", "web console      https://"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo up output lacks %q:\n%s", want, out)
		}
	}

	agent := filepath.Join(dir, "agent.kubeconfig")
	r := runKubectl(t, ctx, agent, protocols[0], nil, "get", "pods", "-n", "dev", "-o", "name")
	if r.code != 0 || !strings.Contains(r.stdout, "pod/toolbox") {
		t.Errorf("agent get pods through the exec plugin: exit %d, %q, %s", r.code, r.stdout, userOutput(r.stderr))
	}
	// The agent's delete in prod is held; the approver, with the kubectl
	// plugin from the demo's bin folder, finds it and denies it.
	del := startKubectl(t, ctx, agent, nil, "delete", "pod", "toolbox", "-n", "prod")
	plugin := func(args ...string) result {
		cmd := exec.CommandContext(ctx, kubectlBin(), append([]string{"kubegate"}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "approver.kubeconfig"), "PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			return result{stdout: string(out), stderr: string(ee.Stderr), code: code}
		} else if err != nil {
			t.Fatalf("kubectl kubegate: %v", err)
		}
		return result{stdout: string(out), code: code}
	}
	var id string
	waitUntil(ctx, func() bool {
		r := plugin("requests", "--pending")
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.Contains(line, `delete pods "toolbox" in namespace "prod"`) {
				id = strings.Fields(line)[0]
				return true
			}
		}
		return false
	})
	if id == "" {
		t.Fatalf("the held delete never showed in 'kubectl kubegate requests --pending'")
	}
	if r := plugin("deny", id, "--reason", "the toolbox stays"); r.code != 0 {
		t.Fatalf("kubectl kubegate deny: exit %d: %s", r.code, r.stderr)
	}
	if r := del.wait(t, ctx); r.code == 0 || !strings.Contains(r.stderr, "the toolbox stays") {
		t.Errorf("agent delete in prod after the denial: exit %d, %s", r.code, userOutput(r.stderr))
	}
	r = runKubectl(t, ctx, filepath.Join(dir, "ci-bot.kubeconfig"), protocols[0], nil, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if r.code != 0 || r.stdout != "system:serviceaccount:dev:ci-bot" {
		t.Errorf("ci-bot whoami: exit %d, %q, %s", r.code, r.stdout, userOutput(r.stderr))
	}

	check := exec.CommandContext(ctx, bin, "policy", "check", "--config", filepath.Join(dir, "kubegate.yaml"),
		"--user", "agent@kubegate.test", "--groups", "dex:agents", "delete", "pods", "toolbox", "-n", "prod")
	cout, err := check.CombinedOutput()
	if err != nil || !strings.Contains(string(cout), "require-approval by rule prod-changes-need-approval") {
		t.Errorf("policy check: %v: %s", err, cout)
	}

	down := exec.CommandContext(ctx, bin, "demo", "down", "--dir", dir)
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("demo down: %v\n%s", err, out)
	}
	stopped = true
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("demo process %d still runs after demo down", pid)
	}
	pids, _ := os.ReadFile(filepath.Join(dir, "cluster", "pids"))
	for _, line := range strings.Split(strings.TrimSpace(string(pids)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		p, _ := strconv.Atoi(f[1])
		if p > 0 && syscall.Kill(p, 0) == nil {
			t.Errorf("%s (pid %d) still runs after demo down", f[0], p)
		}
	}
}
