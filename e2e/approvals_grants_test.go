package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestApprovalHoldsInteractiveExec: `kubectl exec -it` into prod, in a real
// terminal, waits for approval, then runs a shell the person types into.
func TestApprovalHoldsInteractiveExec(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	kubectl := fmt.Sprintf("env KUBECONFIG=%s %s -n prod exec -it toolbox -- sh -c 'exec sh' held-shell; echo kubectl-exit=$?; sleep 600",
		a.kubeconfig("agent"), kubectlBin())
	term := startTmux(t, ctx, "approvals", kubectl)
	screen := term.screen

	held := a.waitPending(t, ctx, `exec pods "toolbox" in namespace "prod"`)
	if !held.Target.TTY || !held.Target.Stdin || !strings.Contains(held.Summary, "held-shell") {
		t.Errorf("held exec request: %+v", held.Target)
	}
	if s := screen(); strings.Contains(strings.ToLower(s), "error") {
		t.Errorf("kubectl shows an error while held:\n%s", s)
	}
	if r := a.kubegate(t, ctx, a.kubeconfig("approver"), "approve", held.ID, "--reason", "debugging"); r.code != 0 {
		t.Fatalf("approve: %s", r.stderr)
	}
	term.typeLine("echo typed-$((6*7))")
	if !waitUntil(ctx, func() bool { return strings.Contains(screen(), "typed-42") }) {
		t.Fatalf("the approved shell never ran the typed command; screen:\n%s", screen())
	}
	term.typeLine("exit 3")
	if !waitUntil(ctx, func() bool { return strings.Contains(screen(), "kubectl-exit=3") }) {
		t.Fatalf("kubectl did not exit with the shell's status; screen:\n%s", screen())
	}
}

// TestGrantAllowsUntilExpiry: an approved grant lets the agent act without
// a hold; once it expires the next request is held again, and a session the
// grant allowed is closed with a message.
func TestGrantAllowsUntilExpiry(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	agent, approver := a.kubeconfig("agent"), a.kubeconfig("approver")

	if r := a.kubegate(t, ctx, approver, "request", "create", "--verbs", "get", "--resources", "pods", "--duration", "1m", "--reason", "mine"); r.code != 0 {
		t.Fatalf("an approver asking for a grant: %s", r.stderr)
	}
	var own string
	for _, r := range a.requests(t, ctx, "approver") {
		if r.Kind == "grant" && r.Requester.User == "approver@kubegate.test" && r.State == "pending" {
			own = r.ID
		}
	}
	if r := a.kubegate(t, ctx, approver, "approve", own); r.code == 0 || !strings.Contains(r.stderr, "nobody may decide on their own") {
		t.Errorf("approving one's own grant request: exit %d, %s", r.code, r.stderr)
	}
	if r := a.kubegate(t, ctx, agent, "request", "create", "--verbs", "create", "--resources", "configmaps", "--duration", "48h", "--reason", "too long"); r.code == 0 || !strings.Contains(r.stderr, "at most 8h") {
		t.Errorf("a grant longer than allowed: exit %d, %s", r.code, r.stderr)
	}

	const grantFor = 15 * time.Second
	r := a.kubegate(t, ctx, agent, "request", "create", "--verbs", "create,delete", "--resources", "configmaps,pods/exec",
		"--namespaces", "prod", "--duration", grantFor.String(), "--reason", "rotate the app config")
	if r.code != 0 || !strings.Contains(r.stdout, "created") {
		t.Fatalf("kubegate request create: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	req := a.waitPending(t, ctx, "grant of create,delete on configmaps,pods/exec in namespaces prod")
	r = a.kubegate(t, ctx, approver, "approve", req.ID, "--reason", "ok for the rotation")
	if r.code != 0 || !strings.Contains(r.stdout, "grant g-") {
		t.Fatalf("approving the grant: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	approvedAt := time.Now()

	// Within the grant: no hold.
	mustSucceed(t, runKubectl(t, ctx, agent, protocols[0], nil, "-n", "prod", "create", "configmap", "granted-cm", "--from-literal=a=b"), "create under the grant")
	session := startKubectl(t, ctx, agent, nil, "-n", "prod", "exec", "toolbox", "--", "sh", "-c", "echo grant-session-started; sleep 600")
	if !waitUntil(ctx, func() bool { return strings.Contains(session.stdout.String(), "grant-session-started") }) {
		t.Fatalf("the exec under the grant never started: %s", userOutput(session.stderr.String()))
	}
	if time.Since(approvedAt) >= grantFor {
		t.Skipf("this machine took %s to get here, longer than the grant; the rest would test nothing", time.Since(approvedAt))
	}

	// At expiry the open session is closed with a message.
	res := session.wait(t, ctx)
	if res.code == 0 || !strings.Contains(userOutput(res.stderr), "expired") {
		t.Errorf("the session after the grant expired: exit %d, %s", res.code, userOutput(res.stderr))
	}
	// After expiry the next change is held again.
	del := startKubectl(t, ctx, agent, nil, "-n", "prod", "delete", "configmap", "granted-cm")
	held := a.waitPending(t, ctx, `delete configmaps "granted-cm"`)
	if r := a.kubegate(t, ctx, approver, "deny", held.ID, "--reason", "grant is over"); r.code != 0 {
		t.Fatalf("deny: %s", r.stderr)
	}
	if res := del.wait(t, ctx); res.code == 0 || !strings.Contains(res.stderr, "grant is over") {
		t.Errorf("delete after expiry: exit %d, %s", res.code, userOutput(res.stderr))
	}
	findAuditEvent(t, a.st.AuditPath, func(e auditEvent) bool {
		return e.Verb == "create" && e.ObjectRef != nil && e.ObjectRef.Resource == "configmaps" &&
			strings.HasPrefix(e.Annotations["kubegate.dev/grant"], "g-") && e.ResponseStatus != nil && e.ResponseStatus.Code == 201
	})
}

// TestGrantRevokedClosesSession: revoking a grant ends the sessions it
// allowed at once.
func TestGrantRevokedClosesSession(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	agent, approver := a.kubeconfig("agent"), a.kubeconfig("approver")
	r := a.kubegate(t, ctx, agent, "request", "create", "--verbs", "create", "--resources", "pods/attach",
		"--namespaces", "prod", "--duration", "1h", "--reason", "watch the toolbox")
	if r.code != 0 {
		t.Fatalf("request create: %s", r.stderr)
	}
	req := a.waitPending(t, ctx, "grant of create on pods/attach")
	if r := a.kubegate(t, ctx, approver, "approve", req.ID); r.code != 0 {
		t.Fatalf("approve: %s", r.stderr)
	}
	// An *os.File as stdin: exec then copies nothing itself, and Wait does
	// not wait on this pipe.
	stdin, typed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer typed.Close()
	session := startKubectl(t, ctx, agent, stdin, "-n", "prod", "attach", "-i", "toolbox")
	go func() {
		// The echo loop answers each line; keep typing until it has.
		for ctx.Err() == nil && session.running() && !strings.Contains(session.stdout.String(), "got: revoke-me") {
			if _, err := typed.Write([]byte("revoke-me\n")); err != nil {
				return
			}
			// Lines typed before the attach is live are lost; type again
			// after a while (a retry interval, not a limit).
			retry, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			waitUntil(retry, func() bool { return strings.Contains(session.stdout.String(), "got: revoke-me") || !session.running() })
			cancel()
		}
	}()
	if !waitUntil(ctx, func() bool { return strings.Contains(session.stdout.String(), "got: revoke-me") }) {
		t.Fatalf("attach under the grant never showed output: %s", userOutput(session.stderr.String()))
	}
	grantID := "g-" + req.ID
	if r := a.kubegate(t, ctx, approver, "revoke", grantID, "--reason", "done"); r.code != 0 {
		t.Fatalf("revoke: %s", r.stderr)
	}
	res := session.wait(t, ctx)
	if !strings.Contains(userOutput(res.stderr), "revoked") {
		t.Errorf("attach after the revoke: exit %d, %s", res.code, userOutput(res.stderr))
	}
	if r := a.kubegate(t, ctx, approver, "revoke", grantID); r.code == 0 || !strings.Contains(r.stderr, "already revoked") {
		t.Errorf("revoking twice: exit %d, %s", r.code, r.stderr)
	}
}

// TestApprovalSurvivesKill: kubegate killed with SIGKILL while a request is
// pending comes back with it pending; an approval then releases the
// agent's next attempt at the same call.
func TestApprovalSurvivesKill(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admin, agent, approver := a.kubeconfig("admin"), a.kubeconfig("agent"), a.kubeconfig("approver")
	mustSucceed(t, runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "create", "configmap", "survivor"), "create configmap")
	first := startKubectl(t, ctx, agent, nil, "-n", "prod", "delete", "configmap", "survivor")
	held := a.waitPending(t, ctx, `delete configmaps "survivor"`)
	if err := a.st.Kill(); err != nil {
		t.Fatal(err)
	}
	if res := first.wait(t, ctx); res.code == 0 {
		t.Fatalf("kubectl succeeded although kubegate was killed: %s", res.stdout)
	}
	if err := a.st.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	again := a.waitPending(t, ctx, `delete configmaps "survivor"`)
	if again.ID != held.ID {
		t.Fatalf("after the restart the pending request is %s, want %s", again.ID, held.ID)
	}
	if r := a.kubegate(t, ctx, approver, "approve", held.ID); r.code != 0 {
		t.Fatalf("approve after restart: %s", r.stderr)
	}
	res := runKubectl(t, ctx, agent, protocols[0], nil, "-n", "prod", "delete", "configmap", "survivor")
	if res.code != 0 || !strings.Contains(userOutput(res.stderr), held.ID) {
		t.Fatalf("the retry after approval: exit %d: %s", res.code, userOutput(res.stderr))
	}
}

// TestApprovalHoldsPortForward: `kubectl port-forward` into prod waits for
// approval, then forwards.
func TestApprovalHoldsPortForward(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("behind-the-hold")) })}
	go func() { _ = srv.Serve(backend) }()
	defer srv.Close()
	pf := startKubectl(t, ctx, a.kubeconfig("agent"), nil, "-n", "prod", "port-forward", "pod/toolbox",
		fmt.Sprintf("0:%d", backend.Addr().(*net.TCPAddr).Port), "--address", "127.0.0.1")
	defer func() { _ = pf.cmd.Process.Kill(); pf.wait(t, ctx) }()
	held := a.waitPending(t, ctx, `portforward pods "toolbox" in namespace "prod"`)
	if strings.Contains(pf.stdout.String(), "Forwarding from") {
		t.Fatalf("port-forward listened before approval: %s", pf.stdout.String())
	}
	if r := a.kubegate(t, ctx, a.kubeconfig("approver"), "approve", held.ID); r.code != 0 {
		t.Fatalf("approve: %s", r.stderr)
	}
	var local string
	if !waitUntil(ctx, func() bool {
		for _, l := range strings.Split(pf.stdout.String(), "\n") {
			var port int
			if _, err := fmt.Sscanf(l, "Forwarding from 127.0.0.1:%d ->", &port); err == nil {
				local = fmt.Sprintf("127.0.0.1:%d", port)
				return true
			}
		}
		return false
	}) {
		t.Fatalf("port-forward never listened after approval: %s", userOutput(pf.stderr.String()))
	}
	resp, err := http.Get("http://" + local + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "behind-the-hold" {
		t.Errorf("through the approved forward: %q", body)
	}
}
