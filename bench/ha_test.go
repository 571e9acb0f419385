package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/gateway"
	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// haBenchPolicy holds agents' deletes in prod for approval.
const haBenchPolicy = `
# The figures compare kubegate with nginx, which has no per-user limits,
# under one user's load: kubegate's rate and stream limits are off.
limits:
  requestsPerSecond: -1
  maxStreams: -1
policy:
  approvers: {groups: ["dex:approvers"]}
  rules:
  - name: hold-deletes
    groups: ["dex:agents"]
    namespaces: ["prod"]
    verbs: ["delete"]
    action: require-approval
  - name: everyone
    groups: ["dex:agents", "dex:approvers"]
    action: allow
`

// haNodes is three kubegate processes sharing approval state.
type haNodes struct {
	nodes []*stack.Stack
}

var (
	haOnce sync.Once
	haSet  *haNodes
	haErr  error
)

func haBench(b *testing.B) *haNodes {
	b.Helper()
	haOnce.Do(func() { haSet, haErr = startHANodes(testenv.Get(b)) })
	if haErr != nil {
		b.Fatal(haErr)
	}
	return haSet
}

func startHANodes(env *testenv.Env) (*haNodes, error) {
	dir := filepath.Join(env.Dir, "kubegate-bench-ha")
	bin := filepath.Join(dir, "kubegate")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kubegate").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building kubegate: %v\n%s", err, out)
	}
	ca, err := testenv.NewPeerCA(filepath.Join(dir, "peer-ca"), "bench-peers")
	if err != nil {
		return nil, err
	}
	addrs := []string{stack.FreeAddr(), stack.FreeAddr(), stack.FreeAddr()}
	h := &haNodes{}
	for i := range addrs {
		name := fmt.Sprintf("node-%d", i)
		cert, key, err := ca.Issue(name)
		if err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf("cluster:\n  nodeID: %s\n  bind: %s\n  bootstrap: %t\n  join: [%s]\n  tls: {certFile: %s, keyFile: %s, caFile: %s}\n",
			name, addrs[i], i == 0, strings.Join(addrs, ", "), cert, key, ca.CAFile)
		st, err := stack.Start(context.Background(), env, stack.Options{Dir: filepath.Join(dir, name), Policy: haBenchPolicy + cfg, Binary: bin})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		h.nodes = append(h.nodes, st)
	}
	return h, nil
}

// api calls kubegate's approval API on node as user.
func (h *haNodes) api(b *testing.B, node int, user, method, path string, body, out any) error {
	b.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", h.nodes[node].Kubeconfigs[user])
	if err != nil {
		b.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, cfg.Host+strings.TrimSuffix(gateway.APIPrefix, "/")+path, rd)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// holdDelete starts an agent's delete of a fresh configmap through node,
// waits until it is held, and returns its access request id and a channel
// that yields when the delete returns.
func (h *haNodes) holdDelete(b *testing.B, node, reader int, name string) (string, <-chan time.Time) {
	b.Helper()
	env := testenv.Get(b)
	ctx := context.Background()
	if _, err := env.Client.CoreV1().ConfigMaps("prod").Create(ctx, configMap(name), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", h.nodes[node].Kubeconfigs["agent"])
	if err != nil {
		b.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	done := make(chan time.Time, 1)
	go func() {
		err := cs.CoreV1().ConfigMaps("prod").Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil {
			b.Error(err)
		}
		done <- time.Now()
	}()
	for {
		var list gateway.RequestList
		if err := h.api(b, reader, "approver", http.MethodGet, "/requests?state=pending", nil, &list); err == nil {
			for _, r := range list.Items {
				if r.Target.Name == name {
					return r.ID, done
				}
			}
		}
		<-poll.C
	}
}

// BenchmarkHAApprovalToRelease measures, with three kubegate processes, the
// time from an approval's API call returning on node-0 to the delete held
// on node-2 being answered: the approval commits through Raft, node-2's
// replica applies it, its held request wakes, and the delete is forwarded.
func BenchmarkHAApprovalToRelease(b *testing.B) {
	h := haBench(b)
	var ds []time.Duration
	for i := range b.N {
		id, done := h.holdDelete(b, 2, 0, fmt.Sprintf("bench-ha-%d-%d", time.Now().UnixNano(), i))
		if err := h.api(b, 0, "approver", http.MethodPost, "/requests/"+id+"/approve", gateway.DecisionSpec{}, nil); err != nil {
			b.Fatal(err)
		}
		approved := time.Now()
		ds = append(ds, (<-done).Sub(approved))
	}
	slices.Sort(ds)
	b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(ds, 99)), "p99-ms")
}

// BenchmarkHALeaderFailover kills the Raft leader's process (SIGKILL) and
// measures the time until an approval, retried through a surviving node,
// commits; then restarts the killed node.
func BenchmarkHALeaderFailover(b *testing.B) {
	h := haBench(b)
	var ds []time.Duration
	for i := range b.N {
		leader := h.leader(b)
		survivor := (leader + 1) % len(h.nodes)
		id, done := h.holdDelete(b, survivor, survivor, fmt.Sprintf("bench-failover-%d-%d", time.Now().UnixNano(), i))
		killed := time.Now()
		if err := h.nodes[leader].Kill(); err != nil {
			b.Fatal(err)
		}
		for h.api(b, survivor, "approver", http.MethodPost, "/requests/"+id+"/approve", gateway.DecisionSpec{}, nil) != nil {
			<-poll.C
		}
		ds = append(ds, time.Since(killed))
		<-done
		if err := h.nodes[leader].Restart(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(ds)
	b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), "max-ms")
}

// leader returns the index of the node whose admin /cluster says it leads.
func (h *haNodes) leader(b *testing.B) int {
	b.Helper()
	for {
		for i, n := range h.nodes {
			resp, err := http.Get(n.AdminURL + "/cluster")
			if err != nil {
				continue
			}
			var st struct {
				Node   string `json:"node"`
				Leader string `json:"leader"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.Leader != "" && st.Leader == st.Node {
				return i
			}
		}
		<-poll.C
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// poll is the pace of the benchmarks' polling loops.
var poll = time.NewTicker(2 * time.Millisecond)

func configMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
