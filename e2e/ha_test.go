package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
)

// haPolicy holds agents' changes in prod, as on a single node.
const haPolicy = `
policy:
  defaultRules: true
  approvers:
    groups: ["dex:approvers", "dex:platform-admins"]
  rules:
  - name: prod-changes-need-approval
    groups: ["dex:agents"]
    namespaces: ["prod"]
    verbs: ["create", "update", "patch", "delete"]
    action: require-approval
  - name: discovery
    nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]
    verbs: ["get"]
    action: allow
  - name: everyone-else
    groups: ["dex:agents", "dex:approvers", "dex:platform-admins"]
    action: allow
`

// haCluster is three kubegate processes sharing approval state over Raft
// with mutual TLS.
type haCluster struct {
	env   *testenv.Env
	ca    *testenv.PeerCA
	dir   string
	nodes []*stack.Stack
	raft  []string // peer addresses
	// console serves the web console on node 0.
	console bool
}

var (
	haOnce sync.Once
	haEnv  *haCluster
	haErr  error
)

func ha(t *testing.T) *haCluster {
	t.Helper()
	env := testenv.Get(t)
	haOnce.Do(func() { haEnv, haErr = startHA(env, 3) })
	if haErr != nil {
		t.Fatalf("starting a three-node kubegate: %v", haErr)
	}
	return haEnv
}

func startHA(env *testenv.Env, n int) (*haCluster, error) {
	return startHAIn(env, n, "kubegate-ha", false)
}

// startHAIn starts n nodes with their files under env.Dir/name; with
// console, node 0 serves the web console.
func startHAIn(env *testenv.Env, n int, name string, console bool) (*haCluster, error) {
	dir := filepath.Join(env.Dir, name)
	ca, err := testenv.NewPeerCA(filepath.Join(dir, "peer-ca"), "kubegate-peers")
	if err != nil {
		return nil, err
	}
	c := &haCluster{env: env, ca: ca, dir: dir, console: console}
	for range n {
		c.raft = append(c.raft, stack.FreeAddr())
	}
	for i := range n {
		st, err := c.startNode(i, ca, true)
		if err != nil {
			return nil, fmt.Errorf("node-%d: %w", i, err)
		}
		c.nodes = append(c.nodes, st)
	}
	return c, nil
}

// startNode starts node i with a peer certificate from ca; node 0
// bootstraps, the others join through all addresses.
func (c *haCluster) startNode(i int, ca *testenv.PeerCA, wait bool) (*stack.Stack, error) {
	bin, err := buildKubegate()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("node-%d", i)
	cert, key, err := ca.Issue(name)
	if err != nil {
		return nil, err
	}
	addr := stack.FreeAddr()
	if i < len(c.raft) {
		addr = c.raft[i]
	}
	clusterYAML := fmt.Sprintf(`
cluster:
  nodeID: %s
  bind: %s
  bootstrap: %t
  join: [%s]
  tls: {certFile: %s, keyFile: %s, caFile: %s}
`, name, addr, i == 0, strings.Join(c.raft, ", "), cert, key, ca.CAFile)
	return stack.Start(context.Background(), c.env, stack.Options{
		Dir: filepath.Join(c.dir, name), Policy: haPolicy + clusterYAML, Binary: bin, Console: c.console && i == 0,
	})
}

func (c *haCluster) kubegate(t *testing.T, ctx context.Context, node int, user string, args ...string) result {
	t.Helper()
	return runKubegate(t, ctx, []string{"KUBECONFIG=" + c.nodes[node].Kubeconfigs[user], "KUBEGATE_ADMIN_URL=" + c.nodes[node].AdminURL}, args...)
}

// waitPendingOn waits, reading from node, for a pending request whose
// summary contains what, and returns its id.
func (c *haCluster) waitPendingOn(t *testing.T, ctx context.Context, node int, what string) string {
	t.Helper()
	var id string
	waitUntil(ctx, func() bool {
		r := c.kubegate(t, ctx, node, "approver", "requests", "--pending")
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.Contains(line, what) {
				id = strings.Fields(line)[0]
				return true
			}
		}
		return false
	})
	if id == "" {
		t.Fatalf("no pending request for %q on node-%d", what, node)
	}
	return id
}

// TestHAApprovalReleasesHoldOnAnotherNode: a delete held on node-2 is
// listed on node-0, approved through node-1, and released on node-2.
func TestHAApprovalReleasesHoldOnAnotherNode(t *testing.T) {
	c := ha(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	mustSucceed(t, runKubectl(t, ctx, c.nodes[0].Kubeconfigs["admin"], protocols[0], nil, "-n", "prod", "create", "configmap", "ha-held"), "create configmap")
	del := startKubectl(t, ctx, c.nodes[2].Kubeconfigs["agent"], nil, "-n", "prod", "delete", "configmap", "ha-held")
	id := c.waitPendingOn(t, ctx, 0, `delete configmaps "ha-held"`)
	if r := c.kubegate(t, ctx, 1, "approver", "approve", id, "--reason", "from node-1"); r.code != 0 {
		t.Fatalf("approve through node-1: %s", r.stderr)
	}
	res := del.wait(t, ctx)
	if res.code != 0 || !strings.Contains(userOutput(res.stderr), "approved by approver@kubegate.test (from node-1)") {
		t.Fatalf("the delete held on node-2: exit %d: %s", res.code, userOutput(res.stderr))
	}
	st := c.kubegate(t, ctx, 1, "", "cluster", "status")
	if st.code != 0 || strings.Count(st.stdout, "Voter") != 3 || !strings.Contains(st.stdout, "true") {
		t.Errorf("cluster status through node-1: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
}

// TestHALiveSessionsAcrossNodes: a session on node-2 is listed by node-0
// and killed through node-1.
func TestHALiveSessionsAcrossNodes(t *testing.T) {
	c := ha(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	session := startKubectl(t, ctx, c.nodes[2].Kubeconfigs["agent"], nil, "-n", "dev", "exec", "toolbox", "--", "sh", "-c", "echo ha-session-up; sleep 600")
	if !waitUntil(ctx, func() bool { return strings.Contains(session.stdout.String(), "ha-session-up") }) {
		t.Fatalf("the exec never started: %s", userOutput(session.stderr.String()))
	}
	var id string
	waitUntil(ctx, func() bool {
		r := c.kubegate(t, ctx, 0, "", "sessions", "--live")
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[1] == "node-2" && strings.Contains(line, "ha-session-up") {
				id = f[0]
				return true
			}
		}
		return false
	})
	if id == "" {
		t.Fatalf("node-0 does not list the session on node-2")
	}
	if r := c.kubegate(t, ctx, 1, "", "sessions", "kill", id, "--reason", "ended from node-1"); r.code != 0 {
		t.Fatalf("kill through node-1: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	res := session.wait(t, ctx)
	if !strings.Contains(userOutput(res.stderr), "ended from node-1") {
		t.Errorf("the killed session: exit %d: %s", res.code, userOutput(res.stderr))
	}
}

// TestHASurvivesLosingTheLeader: with the leader killed, the two others
// elect a new one and decide; the old leader restarts, catches up, and a
// minority refuses decisions with a clear error.
func TestHASurvivesLosingTheLeader(t *testing.T) {
	c := ha(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	leader := c.leader(t, ctx)
	others := []int{}
	for i := range c.nodes {
		if i != leader {
			others = append(others, i)
		}
	}
	if err := c.nodes[leader].Kill(); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, runKubectl(t, ctx, c.nodes[others[0]].Kubeconfigs["admin"], protocols[0], nil, "-n", "prod", "create", "configmap", "ha-failover"), "create configmap")
	del := startKubectl(t, ctx, c.nodes[others[0]].Kubeconfigs["agent"], nil, "-n", "prod", "delete", "configmap", "ha-failover")
	id := c.waitPendingOn(t, ctx, others[1], `delete configmaps "ha-failover"`)
	if r := c.kubegate(t, ctx, others[1], "approver", "approve", id); r.code != 0 {
		t.Fatalf("approve without the old leader: %s", r.stderr)
	}
	if res := del.wait(t, ctx); res.code != 0 {
		t.Fatalf("delete after failover: %s", userOutput(res.stderr))
	}
	if err := c.nodes[leader].Restart(ctx); err != nil {
		t.Fatalf("restarting the old leader: %v", err)
	}
	// The restarted node has caught up: it lists the request decided while
	// it was down.
	if !waitUntil(ctx, func() bool {
		r := c.kubegate(t, ctx, leader, "approver", "requests")
		return strings.Contains(r.stdout, id) && strings.Contains(r.stdout, "used")
	}) {
		t.Fatalf("node-%d never caught up with request %s", leader, id)
	}

	// A minority: stop two nodes; the last one refuses to decide.
	alone, stop := others[0], []int{leader, others[1]}
	mustSucceed(t, runKubectl(t, ctx, c.nodes[alone].Kubeconfigs["admin"], protocols[0], nil, "-n", "prod", "create", "configmap", "ha-minority"), "create configmap")
	minDel := startKubectl(t, ctx, c.nodes[alone].Kubeconfigs["agent"], nil, "-n", "prod", "delete", "configmap", "ha-minority")
	minID := c.waitPendingOn(t, ctx, alone, `delete configmaps "ha-minority"`)
	for _, i := range stop {
		if err := c.nodes[i].Kill(); err != nil {
			t.Fatal(err)
		}
	}
	r := c.kubegate(t, ctx, alone, "approver", "approve", minID)
	if r.code == 0 || !strings.Contains(r.stderr, "leader") {
		t.Errorf("approving in a minority: exit %d: %s", r.code, r.stderr)
	}
	if code := httpStatus(t, ctx, c.nodes[alone].AdminURL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz of a node without quorum: %d", code)
	}
	for _, i := range stop {
		if err := c.nodes[i].Restart(ctx); err != nil {
			t.Fatalf("restarting node-%d: %v", i, err)
		}
	}
	if r := c.kubegate(t, ctx, alone, "approver", "approve", minID); r.code != 0 {
		t.Fatalf("approving once the quorum is back: %s", r.stderr)
	}
	if res := minDel.wait(t, ctx); res.code != 0 {
		t.Errorf("the delete held through the partition: exit %d: %s", res.code, userOutput(res.stderr))
	}
}

// TestHARefusesNodeWithForeignCertificate: a node whose peer certificate
// another CA signed cannot join.
func TestHARefusesNodeWithForeignCertificate(t *testing.T) {
	c := ha(t)
	foreign, err := testenv.NewPeerCA(filepath.Join(c.dir, "foreign-ca"), "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.startNode(7, foreign, true)
	if err == nil {
		_ = st.Kill()
		t.Fatal("a node with a foreign certificate joined the cluster")
	}
	log, _ := os.ReadFile(filepath.Join(c.dir, "node-7", "kubegate.log"))
	if !strings.Contains(err.Error(), "kubegate exited") || !strings.Contains(string(log), "certificate signed by unknown authority") {
		t.Errorf("the foreign node: %v\nits log:\n%s", err, log)
	}
}

// leader returns the index of the node that reports itself leader.
func (c *haCluster) leader(t *testing.T, ctx context.Context) int {
	t.Helper()
	found := -1
	waitUntil(ctx, func() bool {
		for i := range c.nodes {
			r := c.kubegate(t, ctx, i, "", "cluster", "status")
			if strings.Contains(r.stdout, fmt.Sprintf("node node-%d: Leader", i)) {
				found = i
				return true
			}
		}
		return false
	})
	if found < 0 {
		t.Fatal("no node reports itself leader")
	}
	return found
}

func httpStatus(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
