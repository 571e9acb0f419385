package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kgw "github.com/kubegate/kubegate/gateway"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestHAExecHeldOnOneNodeApprovedOnAnother: an exec into prod through
// node-2 waits for approval, given through node-0, then runs.
func TestHAExecHeldOnOneNodeApprovedOnAnother(t *testing.T) {
	c := ha(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ex := startKubectl(t, ctx, c.nodes[2].Kubeconfigs["agent"], nil, "-n", "prod", "exec", "toolbox", "--", "sh", "-c", "echo released-on-node-2")
	id := c.waitPendingOn(t, ctx, 0, `exec pods "toolbox" in namespace "prod"`)
	if r := c.kubegate(t, ctx, 0, "approver", "approve", id); r.code != 0 {
		t.Fatalf("approve through node-0: %s", r.stderr)
	}
	res := ex.wait(t, ctx)
	if res.code != 0 || res.stdout != "released-on-node-2\n" {
		t.Fatalf("the exec held on node-2: exit %d, stdout %q: %s", res.code, res.stdout, userOutput(res.stderr))
	}
}

// TestHAFiftyHeldRequestsThroughLeaderLoss: 50 deletes held across the
// three nodes; the leader is killed; all are approved through the others.
// Every access request is released exactly once and no call is lost: a
// client whose node died retries on another, and its retry is the one
// released.
func TestHAFiftyHeldRequestsThroughLeaderLoss(t *testing.T) {
	c := ha(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	const n = 50
	for i := range n {
		cm := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ha50-%d"}}`, i)
		mustSucceed(t, runKubectl(t, ctx, c.env.AdminKubeconfig, protocols[0], strings.NewReader(cm), "-n", "prod", "create", "-f", "-"), "create")
	}
	clients := make([]kubernetes.Interface, len(c.nodes))
	for i, node := range c.nodes {
		cfg, err := clientcmd.BuildConfigFromFlags("", node.Kubeconfigs["agent"])
		if err != nil {
			t.Fatal(err)
		}
		cfg.QPS, cfg.Burst = 500, 500
		if clients[i], err = kubernetes.NewForConfig(cfg); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		retried  int
	)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("ha50-%d", i)
			for attempt := 0; ; attempt++ {
				err := clients[(i+attempt)%len(clients)].CoreV1().ConfigMaps("prod").Delete(ctx, name, metav1.DeleteOptions{})
				if err == nil {
					return
				}
				mu.Lock()
				if ctx.Err() != nil || attempt > 5 {
					failures = append(failures, fmt.Sprintf("%s: %v", name, err))
					mu.Unlock()
					return
				}
				retried++
				mu.Unlock()
			}
		})
	}
	held := func() map[string]kgw.RequestView {
		out := map[string]kgw.RequestView{}
		for _, r := range c.requestsOn(t, ctx, c.live(), "approver") {
			if strings.Contains(r.Summary, `"ha50-`) {
				out[r.ID] = r
			}
		}
		return out
	}
	if !waitUntil(ctx, func() bool {
		pending := 0
		for _, r := range held() {
			if r.State == "pending" {
				pending++
			}
		}
		return pending == n
	}) {
		t.Fatalf("%d of %d deletes are held", len(held()), n)
	}
	leader := c.leader(t, ctx)
	if err := c.nodes[leader].Kill(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.nodes[leader].Restart(context.Background()); err != nil {
			t.Errorf("restarting node-%d: %v", leader, err)
		}
	}()
	// Approve every one through a surviving node. Until the two elect a
	// new leader, reads and approvals are refused; keep at it until every
	// request has left pending.
	approved := map[string]bool{}
	if !waitUntil(ctx, func() bool {
		all := held()
		for id, r := range all {
			if r.State == "pending" && !approved[id] {
				if res := c.kubegate(t, ctx, c.live(), "approver", "approve", id); res.code == 0 {
					approved[id] = true
				}
			}
		}
		return len(all) == n && len(approved) == n
	}) {
		t.Fatalf("approved %d of %d held deletes", len(approved), n)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d deletes failed for good:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	final := held()
	if len(final) != n {
		t.Errorf("%d access requests for %d deletes (a retry opened another?)", len(final), n)
	}
	for id, r := range final {
		if r.State != "used" || r.UsedBy == "" {
			t.Errorf("request %s (%s) is %s, used by %q: want used exactly once", id, r.Summary, r.State, r.UsedBy)
		}
	}
	t.Logf("50 held deletes released after the leader (node-%d) was killed; %d client retries", leader, retried)
}

// TestHARollingRestartAndLostDisk: every node restarted in turn (SIGTERM,
// as a rolling update does) loses no pending request and no grant; a node
// whose data directory is gone rejoins and gets the state back.
func TestHARollingRestartAndLostDisk(t *testing.T) {
	c := ha(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	r := c.kubegate(t, ctx, 0, "agent", "request", "create", "--verbs", "get", "--resources", "secrets", "--namespaces", "dev", "--duration", "1h", "--reason", "rolling")
	if r.code != 0 {
		t.Fatalf("request create: %s", r.stderr)
	}
	grantReq := c.waitPendingOn(t, ctx, 1, "grant of get on secrets")
	if r := c.kubegate(t, ctx, 1, "approver", "approve", grantReq); r.code != 0 {
		t.Fatalf("approve the grant: %s", r.stderr)
	}
	mustSucceed(t, runKubectl(t, ctx, c.nodes[0].Kubeconfigs["admin"], protocols[0], nil, "-n", "prod", "create", "configmap", "ha-rolling"), "create configmap")
	held := startKubectl(t, ctx, c.nodes[0].Kubeconfigs["agent"], nil, "-n", "prod", "delete", "configmap", "ha-rolling")
	pending := c.waitPendingOn(t, ctx, 2, `delete configmaps "ha-rolling"`)

	for i := range c.nodes {
		if err := c.nodes[i].Stop(); err != nil {
			t.Fatalf("stopping node-%d: %v", i, err)
		}
		// Agents keep working through the other nodes.
		other := (i + 1) % len(c.nodes)
		mustSucceed(t, runKubectl(t, ctx, c.nodes[other].Kubeconfigs["agent"], protocols[0], nil, "-n", "dev", "get", "pods"), fmt.Sprintf("get pods through node-%d while node-%d restarts", other, i))
		if err := c.nodes[i].Restart(ctx); err != nil {
			t.Fatalf("restarting node-%d: %v", i, err)
		}
	}
	if res := held.wait(t, ctx); res.code == 0 {
		t.Fatalf("the delete held on node-0 succeeded without an approval")
	}
	c.checkState(t, ctx, 2, pending, "pending", grantReq)

	// A lost disk: node-1 comes back with an empty data directory.
	if err := c.nodes[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(c.dir, "node-1", "data", "raft")); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].Restart(ctx); err != nil {
		t.Fatalf("restarting node-1 without its data: %v", err)
	}
	c.checkState(t, ctx, 1, pending, "pending", grantReq)

	if r := c.kubegate(t, ctx, 1, "approver", "approve", pending); r.code != 0 {
		t.Fatalf("approve after the restarts: %s", r.stderr)
	}
	mustSucceed(t, runKubectl(t, ctx, c.nodes[2].Kubeconfigs["agent"], protocols[0], nil, "-n", "prod", "delete", "configmap", "ha-rolling"), "the retried delete")
}

// checkState checks, reading from node, that request id is in state want
// and that the grant of request grantReq is active.
func (c *haCluster) checkState(t *testing.T, ctx context.Context, node int, id, want, grantReq string) {
	t.Helper()
	var got string
	waitUntil(ctx, func() bool {
		for _, r := range c.requestsOn(t, ctx, node, "approver") {
			if r.ID == id {
				got = string(r.State)
			}
		}
		return got == want
	})
	if got != want {
		t.Errorf("node-%d: request %s is %q, want %q", node, id, got, want)
	}
	r := c.kubegate(t, ctx, node, "agent", "grants")
	if r.code != 0 || !strings.Contains(r.stdout, "g-"+grantReq) || !strings.Contains(r.stdout, "active") {
		t.Errorf("node-%d: the grant of %s: exit %d\n%s%s", node, grantReq, r.code, r.stdout, r.stderr)
	}
}

// requestsOn lists access requests through node as user.
func (c *haCluster) requestsOn(t *testing.T, ctx context.Context, node int, user string) []kgw.RequestView {
	t.Helper()
	r := c.kubegate(t, ctx, node, user, "requests", "-o", "json")
	if r.code != 0 {
		return nil // a node that just lost its leader refuses reads; callers poll
	}
	var list kgw.RequestList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("requests -o json: %v", err)
	}
	return list.Items
}

// live is the index of a node whose process runs.
func (c *haCluster) live() int {
	for i, n := range c.nodes {
		if n.Running() {
			return i
		}
	}
	return 0
}
