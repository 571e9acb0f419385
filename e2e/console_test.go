package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// prompt is a root shell's prompt on a line of its own.
var prompt = regexp.MustCompile(`(?m)^# ?$`)

// consolePolicy holds the agent's changes in prod for a person's approval.
const consolePolicy = `
policy:
  defaultRules: true
  approvers:
    groups: ["dex:approvers"]
  rules:
  - name: prod-changes-need-approval
    groups: ["dex:agents"]
    namespaces: ["prod"]
    verbs: ["create", "update", "patch", "delete"]
    action: require-approval
    holdTimeout: 5m
    message: changes in prod need a person's approval
    auditLevel: RequestResponse
  - name: discovery
    nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]
    verbs: ["get"]
    action: allow
  - name: agents
    groups: ["dex:agents"]
    action: allow
    auditLevel: RequestResponse
  - name: people
    groups: ["dex:approvers", "dex:auditors", "dex:platform-admins"]
    action: allow
`

// TestConsoleInBrowser drives the web console in Debian's chromium with
// playwright-core (console/e2e/console.cjs): the approver signs in through
// Dex's form, sees the agent's held kubectl delete appear live, approves it
// and sees kubectl finish; sees a second held delete denied with the
// `kubegate deny` CLI leave the list by itself; replays the agent's exec -it
// recording and sees what was typed and printed; opens the agent's API
// timeline with a masked request body; watches a live exec session as it
// happens and kills it; and the agent, who is no approver, is refused. Screenshots of every page go to
// $KUBEGATE_E2E_ARTIFACTS (else a temporary directory), named in the log.
func TestConsoleInBrowser(t *testing.T) {
	for _, bin := range []string{"/usr/bin/chromium", "node"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing (make deps installs it): %v", bin, err)
		}
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "console", "ui", "vendor", "asciinema-player.min.js")); err != nil {
		t.Fatalf("the console's asciinema-player is not built (make console-assets): %v", err)
	}
	out, err := exec.Command(filepath.Join(root, "hack", "npm-cache.sh"), filepath.Join(root, "console", "e2e")).Output()
	if err != nil {
		t.Fatalf("installing playwright-core (make console-e2e-deps): %v", err)
	}
	playwrightDir := strings.TrimSpace(string(out))
	kubegateBin, err := buildKubegate() // the CLI approves and denies; built before the clock starts
	if err != nil {
		t.Fatal(err)
	}

	env := testenv.Get(t)
	t0 := time.Now()
	step := func(format string, args ...any) {
		t.Helper()
		t.Logf("+%.1fs "+format, append([]any{time.Since(t0).Seconds()}, args...)...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := stack.Start(ctx, env, stack.Options{Dir: filepath.Join(env.Dir, "kubegate-console"), Policy: consolePolicy, Console: true})
	if err != nil {
		t.Fatalf("starting kubegate with its console: %v", err)
	}

	step("kubegate with its console is up")
	// The agent's exec -it session, in a real terminal.
	tctx, tcancel := context.WithTimeout(ctx, testTimeout)
	defer tcancel()
	// It is in prod, so it is held until the approver approves it with the
	// CLI; the recording's page shows that approval.
	marker := "console-replay"
	term := startTmux(t, tctx, "console", fmt.Sprintf("env KUBECONFIG=%s %s exec -it -n prod toolbox -- sh -c 'exec sh' %s; echo kubectl-exit=$?; sleep 600",
		st.Kubeconfigs["agent"], kubectlBin(), marker))
	approverEnv := []string{"KUBECONFIG=" + st.Kubeconfigs["approver"]}
	var heldExec string
	waitUntil(tctx, func() bool {
		for _, line := range strings.Split(runKubegate(t, tctx, approverEnv, "requests", "--pending").stdout, "\n") {
			if strings.Contains(line, marker) {
				heldExec = strings.Fields(line)[0]
				return true
			}
		}
		return false
	})
	if heldExec == "" {
		t.Fatalf("the exec in prod was never held; screen:\n%s", term.screen())
	}
	if r := runKubegate(t, tctx, approverEnv, "approve", heldExec, "--reason", "debugging the incident"); r.code != 0 {
		t.Fatalf("approving the exec: %s", r.stderr)
	}
	step("approved the held exec %s", heldExec)
	if !waitUntil(tctx, func() bool { return prompt.MatchString(term.screen()) }) {
		t.Fatalf("the shell never prompted; screen:\n%s", term.screen())
	}
	term.typeLine("echo console-typed-$((6*7))")
	if !waitUntil(tctx, func() bool { return strings.Contains(term.screen(), "console-typed-42\n") }) {
		t.Fatalf("the typed command's output never showed; screen:\n%s", term.screen())
	}
	term.typeLine("exit 3")
	if !waitUntil(tctx, func() bool { return strings.Contains(term.screen(), "kubectl-exit=3") }) {
		t.Fatalf("kubectl did not exit with 3; screen:\n%s", term.screen())
	}
	session := sessionEvent(t, st.AuditPath, marker)
	step("exec -it session recorded: %s", session.AuditID)

	// A call with a JSON body, for the API timeline.
	timelineCM := fmt.Sprintf("console-timeline-%x", randomBytes(t, 3))
	if b, err := exec.CommandContext(tctx, kubectlBin(), "--kubeconfig", st.Kubeconfigs["agent"], "create", "configmap", timelineCM, "-n", "dev",
		"--from-literal=greeting=hello").CombinedOutput(); err != nil {
		t.Fatalf("kubectl create configmap: %v: %s", err, b)
	}

	step("created the configmaps")
	// A session that stays live, for the browser to watch and kill.
	live := startTmux(t, tctx, "console-live", fmt.Sprintf("env KUBECONFIG=%s %s exec -it toolbox -- sh -c 'exec sh' console-live; echo kubectl-exit=$?; sleep 600",
		st.Kubeconfigs["agent"], kubectlBin()))
	if !waitUntil(tctx, func() bool { return prompt.MatchString(live.screen()) }) {
		t.Fatalf("the live shell never prompted; screen:\n%s", live.screen())
	}
	live.typeLine("echo started-$((2*3))")
	if !waitUntil(tctx, func() bool { return strings.Contains(live.screen(), "started-6\n") }) {
		t.Fatalf("the live session never answered; screen:\n%s", live.screen())
	}

	// The configmap the agent will delete.
	cm := fmt.Sprintf("console-held-%x", randomBytes(t, 3))
	for _, name := range []string{cm, cm + "-cli"} {
		if _, err := env.Client.CoreV1().ConfigMaps("prod").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	artifacts := os.Getenv("KUBEGATE_E2E_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else {
		artifacts = filepath.Join(artifacts, t.Name())
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "console", "e2e", "console.cjs"))
	cmd.Env = append(os.Environ(),
		"PLAYWRIGHT_DIR="+playwrightDir,
		"CONSOLE_URL="+st.ConsoleURL,
		"ARTIFACTS="+artifacts,
		"USER_DATA_DIR="+t.TempDir(),
		"APPROVER_EMAIL="+env.Dex.Users["approver"].Email,
		"APPROVER_PASSWORD="+env.Dex.Users["approver"].Password,
		"AGENT_EMAIL="+env.Dex.Users["agent"].Email,
		"AGENT_PASSWORD="+env.Dex.Users["agent"].Password,
		"AGENT_KUBECONFIG="+st.Kubeconfigs["agent"],
		"KUBECTL="+kubectlBin(),
		"CONFIGMAP="+cm,
		"RECORDING_ID="+string(session.AuditID),
		"TYPED=echo console-typed-$((6*7))",
		"PRINTED=console-typed-42",
		"EXIT_CODE=3",
		"EXEC_APPROVAL=debugging the incident",
		"TIMELINE_CONFIGMAP="+timelineCM,
		"TMUX_SOCKET="+live.sock,
		"KUBEGATE="+kubegateBin,
		"APPROVER_KUBECONFIG="+st.Kubeconfigs["approver"],
	)
	step("running the browser script")
	b, err := cmd.CombinedOutput()
	t.Logf("browser script output:\n%s", b)
	t.Logf("screenshots: %s", artifacts)
	if err != nil {
		t.Fatalf("the browser script failed: %v", err)
	}

	// What the browser did, seen from the cluster and the audit log.
	if _, err := env.Client.CoreV1().ConfigMaps("prod").Get(ctx, cm, metav1.GetOptions{}); err == nil {
		t.Errorf("configmap %s still exists after the approval in the console", cm)
	}
	if _, err := env.Client.CoreV1().ConfigMaps("prod").Get(ctx, cm+"-cli", metav1.GetOptions{}); err != nil {
		t.Errorf("configmap %s-cli, whose delete was denied, is gone: %v", cm, err)
	}
	var approved bool
	for _, ev := range auditEvents(t, st.AuditPath) {
		if ev.Annotations["kubegate.dev/event"] == "api.request.approve" && ev.User.Username == env.Dex.Users["approver"].Email &&
			ev.Annotations["kubegate.dev/message"] == "checked in the change ticket" && ev.ResponseStatus != nil && ev.ResponseStatus.Code == 200 {
			approved = true
		}
	}
	if !approved {
		t.Errorf("no audit event of the approver's approval through the console")
	}
	for _, name := range []string{"01-approvals-empty", "02-approvals-pending", "03-approvals-decided", "04-sessions", "05-recording", "06-timeline-sessions", "07-timeline",
		"08-sessions-live", "09-live-watch", "10-live-killed", "11-refused"} {
		if fi, err := os.Stat(filepath.Join(artifacts, name+".png")); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s missing: %v", name, err)
		}
	}
}
