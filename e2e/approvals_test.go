package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApprovalReleasesHeldDelete: an agent's delete in prod blocks at the
// gateway until an approver, in another process, approves it; then it runs
// as if it had just arrived, and kubectl shows who approved it.
func TestApprovalReleasesHeldDelete(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admin, agent, approver := a.kubeconfig("admin"), a.kubeconfig("agent"), a.kubeconfig("approver")
	mustSucceed(t, runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "create", "deployment", "web", "--image=busybox", "--replicas=0"), "create deployment web")

	del := startKubectl(t, ctx, agent, nil, "-n", "prod", "delete", "deployment", "web")
	held := a.waitPending(t, ctx, `delete deployments.apps "web" in namespace "prod"`)
	if !del.running() {
		t.Fatalf("kubectl finished while its request was pending: %s", userOutput(del.stderr.String()))
	}
	if held.Requester.User != "agent@kubegate.test" || held.Rule != "prod-changes-need-approval" {
		t.Errorf("held request: requester %q rule %q", held.Requester.User, held.Rule)
	}
	if got := a.kubegate(t, ctx, agent, "approve", held.ID); got.code == 0 || !strings.Contains(got.stderr, "nobody may decide on their own access request") {
		t.Errorf("the agent approving its own request: exit %d, %s", got.code, got.stderr)
	}
	r := a.kubegate(t, ctx, approver, "approve", held.ID, "--reason", "planned cleanup")
	if r.code != 0 || !strings.Contains(r.stdout, "approved") {
		t.Fatalf("kubegate approve: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	res := del.wait(t, ctx)
	if res.code != 0 || !strings.Contains(res.stdout, `deployment.apps "web" deleted`) {
		t.Fatalf("the released delete: exit %d, stdout %q, %s", res.code, res.stdout, userOutput(res.stderr))
	}
	if out := userOutput(res.stderr); !strings.Contains(out, "approved by approver@kubegate.test (planned cleanup)") {
		t.Errorf("kubectl does not say who approved; its output:\n%s", out)
	}
	if got := runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "get", "deployment", "web"); got.code == 0 || !strings.Contains(got.stderr, "NotFound") {
		t.Errorf("deployment web still exists: exit %d, %s", got.code, userOutput(got.stderr))
	}
	if got := a.kubegate(t, ctx, approver, "approve", held.ID); got.code != 0 {
		t.Errorf("approving again by the same approver must be a no-op, got exit %d: %s", got.code, got.stderr)
	}
	if got := a.kubegate(t, ctx, admin, "deny", held.ID, "--reason", "late"); got.code == 0 || !strings.Contains(got.stderr, "already decided") {
		t.Errorf("denying a decided request: exit %d, %s", got.code, got.stderr)
	}

	ev := findAuditEvent(t, a.st.AuditPath, func(e auditEvent) bool {
		return e.Verb == "delete" && e.ObjectRef != nil && e.ObjectRef.Name == "web" && e.Annotations["kubegate.dev/access-request"] == held.ID
	})
	if ev.Annotations["kubegate.dev/hold-outcome"] != "approved" || ev.Annotations["kubegate.dev/approved-by"] != "approver@kubegate.test" || ev.Annotations["kubegate.dev/hold-wait"] == "" {
		t.Errorf("audit event of the released delete: %v", ev.Annotations)
	}
	findAuditEvent(t, a.st.AuditPath, func(e auditEvent) bool {
		return e.Annotations["kubegate.dev/event"] == "api.request.approve" && e.Annotations["kubegate.dev/access-request"] == held.ID && e.User.Username == "approver@kubegate.test"
	})
	if !waitUntil(ctx, func() bool {
		return len(a.hook.find("request.created", held.ID, "kubegate approve "+held.ID)) > 0 && len(a.hook.find("request.approved", held.ID)) > 0
	}) {
		t.Errorf("the webhook never got the new request (with its approve command) and its approval")
	}
}

// TestApprovalDeniedAndExpired: a denial reaches the agent's kubectl with
// the approver's reason; a hold nobody decides on times out with a clear
// message; deciding either afterwards is an error that changes nothing.
func TestApprovalDeniedAndExpired(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admin, agent, approver := a.kubeconfig("admin"), a.kubeconfig("agent"), a.kubeconfig("approver")
	for _, name := range []string{"deny-me", "short-lived"} {
		mustSucceed(t, runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "create", "configmap", name), "create configmap "+name)
	}

	t.Run("denied", func(t *testing.T) {
		del := startKubectl(t, ctx, agent, nil, "-n", "prod", "delete", "configmap", "deny-me")
		held := a.waitPending(t, ctx, `delete configmaps "deny-me"`)
		if got := a.kubegate(t, ctx, approver, "deny", held.ID); got.code == 0 || !strings.Contains(got.stderr, "--reason") {
			t.Errorf("deny without a reason: exit %d, %s", got.code, got.stderr)
		}
		r := a.kubegate(t, ctx, approver, "deny", held.ID, "--reason", "not during the change freeze")
		if r.code != 0 {
			t.Fatalf("kubegate deny: %s", r.stderr)
		}
		res := del.wait(t, ctx)
		out := userOutput(res.stderr)
		for _, want := range []string{"Forbidden", "denied by approver@kubegate.test: not during the change freeze", held.ID, "kubegate request id"} {
			if res.code == 0 || !strings.Contains(out, want) {
				t.Errorf("kubectl output (exit %d) lacks %q:\n%s", res.code, want, out)
			}
		}
		if got := a.kubegate(t, ctx, approver, "approve", held.ID); got.code == 0 || !strings.Contains(got.stderr, "already decided") {
			t.Errorf("approving a denied request: exit %d, %s", got.code, got.stderr)
		}
		if got := runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "get", "configmap", "deny-me"); got.code != 0 {
			t.Errorf("the denied delete happened: %s", userOutput(got.stderr))
		}
	})
	t.Run("expired", func(t *testing.T) {
		res := runKubectl(t, ctx, agent, protocols[0], nil, "-n", "prod", "delete", "configmap", "short-lived")
		out := userOutput(res.stderr)
		if res.code == 0 || !strings.Contains(out, `held for approval by rule "short-holds", and nobody approved it before`) {
			t.Fatalf("kubectl after the hold timed out: exit %d:\n%s", res.code, out)
		}
		var id string
		for _, r := range a.requests(t, ctx, "approver") {
			if strings.Contains(r.Summary, `"short-lived"`) {
				id = r.ID
				if r.State != "expired" {
					t.Errorf("request %s is %s, want expired", r.ID, r.State)
				}
			}
		}
		if got := a.kubegate(t, ctx, approver, "approve", id); got.code == 0 || !strings.Contains(got.stderr, "expired") {
			t.Errorf("approving an expired request: exit %d, %s", got.code, got.stderr)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		if got := a.kubegate(t, ctx, approver, "approve", "no-such-request"); got.code == 0 || !strings.Contains(got.stderr, "no such access request") {
			t.Errorf("approving an unknown request: exit %d, %s", got.code, got.stderr)
		}
	})
}

// TestApprovalTwoPeople: a rule asking for two approvers keeps the request
// held after the first approval and releases it on the second, from a
// different person.
func TestApprovalTwoPeople(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admin, agent, approver := a.kubeconfig("admin"), a.kubeconfig("agent"), a.kubeconfig("approver")
	mustSucceed(t, runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "create", "secret", "generic", "two-keys", "--from-literal=k=v"), "create secret")
	del := startKubectl(t, ctx, agent, nil, "-n", "prod", "delete", "secret", "two-keys")
	held := a.waitPending(t, ctx, `delete secrets "two-keys"`)
	if held.ApprovalsRequired != 2 {
		t.Fatalf("approvals required = %d, want 2", held.ApprovalsRequired)
	}
	r := a.kubegate(t, ctx, approver, "approve", held.ID)
	if r.code != 0 || !strings.Contains(r.stdout, "1 of 2") {
		t.Fatalf("first approval: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r := a.kubegate(t, ctx, approver, "approve", held.ID); r.code != 0 || !strings.Contains(r.stdout, "1 of 2") {
		t.Fatalf("the same approver again must not count twice: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	for _, v := range a.requests(t, ctx, "approver") {
		if v.ID == held.ID && v.State != "pending" {
			t.Fatalf("after one of two approvals the request is %s", v.State)
		}
	}
	if !del.running() {
		t.Fatalf("kubectl finished after one of two approvals: %s", userOutput(del.stderr.String()))
	}
	if r := a.kubegate(t, ctx, admin, "approve", held.ID, "--reason", "second pair of eyes"); r.code != 0 || !strings.Contains(r.stdout, "approved") {
		t.Fatalf("second approval: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if res := del.wait(t, ctx); res.code != 0 {
		t.Fatalf("delete after two approvals: exit %d: %s", res.code, userOutput(res.stderr))
	}
}

// TestApprovalRefusesForgedApprovers: someone outside the approver groups,
// and tokens that claim an approver's name and groups but are signed by a
// key the issuer never published, or come from an issuer kubegate does not
// trust, cannot decide; the request stays pending.
func TestApprovalRefusesForgedApprovers(t *testing.T) {
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admin, agent := a.kubeconfig("admin"), a.kubeconfig("agent")
	mustSucceed(t, runKubectl(t, ctx, admin, protocols[0], nil, "-n", "prod", "create", "configmap", "forgery-target"), "create configmap")
	del := startKubectl(t, ctx, agent, nil, "-n", "prod", "delete", "configmap", "forgery-target")
	held := a.waitPending(t, ctx, `delete configmaps "forgery-target"`)

	if r := a.kubegate(t, ctx, a.kubeconfig("ci-bot"), "approve", held.ID); r.code == 0 || !strings.Contains(r.stderr, "not in a group that may decide") {
		t.Errorf("a ServiceAccount approving: exit %d, %s", r.code, r.stderr)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for issuer, want := range map[string]string{a.env.Dex.Issuer: "invalid token", "https://idp.attacker.example": "token issuer is not configured"} {
		claims := map[string]any{
			"iss": issuer, "aud": a.env.Dex.ClientID, "sub": "forged", "email": "approver@kubegate.test",
			"groups": []string{"approvers"}, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		}
		forged := filepath.Join(t.TempDir(), "forged.kubeconfig")
		if err := a.env.WriteTokenKubeconfig(forged, a.st.URL, "dev", signJWT(t, key, claims)); err != nil {
			t.Fatal(err)
		}
		if r := a.kubegate(t, ctx, forged, "approve", held.ID); r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("a forged token of issuer %s approving: exit %d, %s", issuer, r.code, r.stderr)
		}
	}
	for _, v := range a.requests(t, ctx, "approver") {
		if v.ID == held.ID && (v.State != "pending" || len(v.Approvals) != 0) {
			t.Fatalf("after forged approvals the request is %s with %d approvals", v.State, len(v.Approvals))
		}
	}
	if r := a.kubegate(t, ctx, a.kubeconfig("approver"), "deny", held.ID, "--reason", "cleanup"); r.code != 0 {
		t.Fatalf("deny: %s", r.stderr)
	}
	del.wait(t, ctx)
}

// signJWT signs claims as a compact RS256 JWT under the key id "forged".
func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	return signRS256(t, key, "forged", claims)
}
