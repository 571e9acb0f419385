package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kc runs kubectl through kubegate with a kubeconfig and returns its result.
func kc(t *testing.T, kubeconfig string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return runKubectl(t, ctx, kubeconfig, protocols[0], stdin, args...)
}

func mustSucceed(t *testing.T, r result, what string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d: %s", what, r.code, userOutput(r.stderr))
	}
}

func TestGatewayEverydayKubectl(t *testing.T) {
	g := gateway(t)
	for _, id := range []struct{ name, kubeconfig string }{{"dex token", g.agentKubeconfig}, {"serviceaccount token", g.botKubeconfig}} {
		t.Run(id.name, func(t *testing.T) {
			r := kc(t, id.kubeconfig, nil, "get", "pods", "-o", "name")
			mustSucceed(t, r, "get pods")
			if !strings.Contains(r.stdout, "pod/toolbox") {
				t.Errorf("get pods: %q lacks pod/toolbox", r.stdout)
			}
			r = kc(t, id.kubeconfig, nil, "api-resources", "--api-group=apps", "-o", "name")
			mustSucceed(t, r, "api-resources")
			if !strings.Contains(r.stdout, "deployments.apps") {
				t.Errorf("api-resources: %q lacks deployments.apps", r.stdout)
			}
			name := "cm-" + strings.ReplaceAll(id.name, " ", "-")
			manifest := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  k: v\n", name)
			mustSucceed(t, kc(t, id.kubeconfig, strings.NewReader(manifest), "apply", "-f", "-"), "apply")
			r = kc(t, id.kubeconfig, nil, "get", "configmap", name, "-o", "jsonpath={.data.k}")
			mustSucceed(t, r, "get configmap")
			if r.stdout != "v" {
				t.Errorf("configmap data %q, want v", r.stdout)
			}
			mustSucceed(t, kc(t, id.kubeconfig, nil, "delete", "configmap", name), "delete")
		})
	}
}

// TestGatewayCanIReflectsImpersonatedRBAC checks that the apiserver applies
// the caller's RBAC, not kubegate's: the agent may edit dev, only view prod.
func TestGatewayCanIReflectsImpersonatedRBAC(t *testing.T) {
	g := gateway(t)
	cases := []struct {
		kubeconfig string
		args       []string
		want       string
	}{
		{g.agentKubeconfig, []string{"create", "pods", "-n", "dev"}, "yes"},
		{g.agentKubeconfig, []string{"create", "pods", "-n", "kube-system"}, "no"},
		{g.agentKubeconfig, []string{"get", "pods", "-n", "prod"}, "yes"},
		{g.agentKubeconfig, []string{"impersonate", "users"}, "no"},
		{g.botKubeconfig, []string{"create", "configmaps", "-n", "dev"}, "yes"},
		{g.botKubeconfig, []string{"get", "pods", "-n", "prod"}, "no"},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.kubeconfig)+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			r := kc(t, tc.kubeconfig, nil, append([]string{"auth", "can-i"}, tc.args...)...)
			if got := strings.TrimSpace(r.stdout); got != tc.want {
				t.Errorf("can-i %v = %q, want %q (stderr %s)", tc.args, got, tc.want, userOutput(r.stderr))
			}
		})
	}
}

func TestGatewayWatchStreams(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	for _, id := range []struct{ name, kubeconfig string }{{"dex token", g.agentKubeconfig}, {"serviceaccount token", g.botKubeconfig}} {
		t.Run(id.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			cmd := kubectlCmd(ctx, id.kubeconfig, protocols[0], "get", "configmaps", "-w", "-o", "name")
			out, stderr := newLockedBuffer(), newLockedBuffer()
			cmd.Stdout, cmd.Stderr = out, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			// The watch is open once kubectl logged its watch request.
			if !waitUntil(ctx, func() bool { return strings.Contains(stderr.String(), "watch=true") }) {
				t.Fatalf("kubectl never opened the watch; stderr:\n%s", stderr.String())
			}
			for i := range 3 {
				name := fmt.Sprintf("watched-%s-%d", strings.ReplaceAll(id.name, " ", "-"), i)
				_, err := env.Client.CoreV1().ConfigMaps("dev").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_ = env.Client.CoreV1().ConfigMaps("dev").Delete(context.Background(), name, metav1.DeleteOptions{})
				})
				if !waitUntil(ctx, func() bool { return strings.Contains(out.String(), "configmap/"+name+"\n") }) {
					t.Fatalf("watch never showed %s while open; stdout:\n%s", name, out.String())
				}
			}
		})
	}
}

func TestGatewayLogsFollow(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx0, cancel0 := context.WithTimeout(context.Background(), testTimeout)
	defer cancel0()
	if err := env.CreatePod(ctx0, "dev", "ticker", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []struct{ name, kubeconfig string }{{"dex token", g.agentKubeconfig}, {"serviceaccount token", g.botKubeconfig}} {
		t.Run(id.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			cmd := kubectlCmd(ctx, id.kubeconfig, protocols[0], "logs", "-f", "ticker")
			out, stderr := newLockedBuffer(), newLockedBuffer()
			cmd.Stdout, cmd.Stderr = out, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			// Lines keep arriving while the request is open: wait for one
			// printed after the first one seen.
			var first string
			if !waitUntil(ctx, func() bool {
				lines := strings.Split(strings.TrimSpace(out.String()), "\n")
				last := strings.TrimSpace(lines[len(lines)-1])
				if first == "" {
					first = last
					return false
				}
				return last != first
			}) {
				t.Fatalf("logs -f showed no new line; stdout:\n%s\nstderr:\n%s", out.String(), userOutput(stderr.String()))
			}
		})
	}
}

func TestGatewayDeniesWithRuleMessage(t *testing.T) {
	g := gateway(t)
	cases := []struct {
		name     string
		args     []string
		stdin    string
		wantText []string
	}{
		{"rule denies delete in prod", []string{"-n", "prod", "delete", "pod", "toolbox"}, "",
			[]string{"Forbidden", `denied by rule "no-deletes-in-prod"`, "deleting in prod needs a change ticket", "kubegate request id"}},
		{"held request times out", []string{"-n", "prod", "get", "secrets"}, "",
			[]string{"Forbidden", `held for approval by rule "prod-secrets-need-approval", and nobody approved it`}},
		{"privileged pod", []string{"apply", "-f", "-"}, privilegedPod, []string{"Forbidden", "privileged"}},
		{"privileged deployment template", []string{"apply", "-f", "-"}, privilegedDeployment, []string{"Forbidden", "privileged"}},
		{"host network patch", []string{"patch", "deployment", "plain-web", "--type=json", "-p", `[{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]`}, "",
			[]string{"Forbidden", "hostNetwork"}},
	}
	mustSucceed(t, kc(t, g.agentKubeconfig, strings.NewReader(plainDeployment), "apply", "-f", "-"), "apply plain deployment")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := kc(t, g.agentKubeconfig, strings.NewReader(tc.stdin), tc.args...)
			if r.code == 0 {
				t.Fatalf("kubectl %v succeeded; stdout %s", tc.args, r.stdout)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("kubectl output lacks %q:\n%s", w, userOutput(r.stderr))
				}
			}
		})
	}
	t.Run("plain pod is created", func(t *testing.T) {
		r := kc(t, g.agentKubeconfig, strings.NewReader(plainPod), "apply", "-f", "-")
		mustSucceed(t, r, "apply plain pod")
		mustSucceed(t, kc(t, g.agentKubeconfig, nil, "delete", "pod", "plain", "--wait=false"), "delete plain pod")
	})
}

const plainPod = `apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  nodeName: testnode
  containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
`

const privilegedPod = `apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  nodeName: testnode
  containers:
  - name: main
    image: busybox
    securityContext: {privileged: true}
`

const privilegedDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: privileged-web}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec:
      volumes: [{name: root, hostPath: {path: /}}]
      containers: [{name: main, image: busybox}]
`

const plainDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: plain-web}
spec:
  replicas: 0
  selector: {matchLabels: {app: plain-web}}
  template:
    metadata: {labels: {app: plain-web}}
    spec:
      containers: [{name: main, image: busybox}]
`

func TestGatewayRefusesSmuggledIdentity(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	t.Run("kubectl --as", func(t *testing.T) {
		r := kc(t, g.agentKubeconfig, nil, "--as", "system:admin", "--as-group", "system:masters", "-n", "prod", "get", "secrets")
		if r.code == 0 || !strings.Contains(r.stderr, "impersonation headers from clients are not accepted") {
			t.Errorf("--as: exit %d, stderr %s", r.code, userOutput(r.stderr))
		}
	})
	t.Run("an apiserver token is no kubegate token", func(t *testing.T) {
		ctx := context.Background()
		tok, err := env.ServiceAccountToken(ctx, "dev", "ci-bot", env.APIServerURL, 600e9) // audience of the apiserver, not kubegate
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := env.WriteTokenKubeconfig(path, g.url, "dev", tok); err != nil {
			t.Fatal(err)
		}
		r := kc(t, path, nil, "get", "pods")
		if r.code == 0 || !strings.Contains(r.stderr, "Unauthorized") {
			t.Errorf("exit %d, stderr %s", r.code, userOutput(r.stderr))
		}
		if strings.Contains(r.stderr, tok) || strings.Contains(readFile(t, g.auditPath), tok) {
			t.Error("the token appears in kubectl's output or the audit log")
		}
	})
	t.Run("no token", func(t *testing.T) {
		resp, err := env.Dex.HTTPClient().Get(g.url + "/api/v1/namespaces/dev/pods")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st metav1.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || st.Kind != "Status" || st.Reason != metav1.StatusReasonUnauthorized {
			t.Errorf("no token: %d %+v", resp.StatusCode, st)
		}
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGatewayAuditsEveryRequestOnce makes a known set of requests with a
// unique user agent and finds exactly one matching event for each.
func TestGatewayAuditsEveryRequestOnce(t *testing.T) {
	g := gateway(t)
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", g.agentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.UserAgent = "audit-count-test/" + t.Name()
	cfg.ContentType = "application/vnd.kubernetes.protobuf" // exercise protobuf through kubegate too
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ verb, resource, ns, name, decision string }
	var wants []want
	pods, err := cs.CoreV1().Pods("dev").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("list pods over protobuf: %v (%d pods)", err, len(pods.Items))
	}
	wants = append(wants, want{"list", "pods", "dev", "", "allow"})
	if _, err := cs.CoreV1().Pods("dev").Get(ctx, "toolbox", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"get", "pods", "dev", "toolbox", "allow"})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audited"}, Data: map[string]string{"a": "b"}}
	if _, err := cs.CoreV1().ConfigMaps("dev").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap over protobuf: %v", err)
	}
	wants = append(wants, want{"create", "configmaps", "dev", "", "allow"})
	if err := cs.CoreV1().ConfigMaps("dev").Delete(ctx, "audited", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"delete", "configmaps", "dev", "audited", "allow"})
	if err := cs.CoreV1().Pods("prod").Delete(ctx, "toolbox", metav1.DeleteOptions{}); err == nil {
		t.Fatal("delete in prod succeeded")
	}
	wants = append(wants, want{"delete", "pods", "prod", "toolbox", "deny"})

	var got []auditv1.Event
	f, err := os.Open(g.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line is not an Event: %v", err)
		}
		if ev.UserAgent == cfg.UserAgent {
			got = append(got, ev)
		}
	}
	if len(got) != len(wants) {
		t.Fatalf("%d audit events for %d requests", len(got), len(wants))
	}
	for i, w := range wants {
		ev := got[i]
		if ev.Verb != w.verb || ev.ObjectRef == nil || ev.ObjectRef.Resource != w.resource || ev.ObjectRef.Namespace != w.ns ||
			ev.ObjectRef.Name != w.name || ev.Annotations["kubegate.dev/decision"] != w.decision || ev.User.Username != "agent@kubegate.test" {
			t.Errorf("event %d = verb %s ref %+v decision %s user %s; want %+v", i, ev.Verb, ev.ObjectRef, ev.Annotations["kubegate.dev/decision"], ev.User.Username, w)
		}
		if ev.AuditID == "" || ev.Stage != auditv1.StageResponseComplete || ev.ResponseStatus == nil {
			t.Errorf("event %d lacks id, stage or status: %+v", i, ev)
		}
	}
}

func TestGatewayAdminEndpoints(t *testing.T) {
	g := gateway(t)
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		resp, err := http.Get(g.adminURL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s %s", p, resp.Status, body)
		}
		if p == "/metrics" && !strings.Contains(string(body), "kubegate_requests_total{") {
			t.Errorf("/metrics lacks kubegate_requests_total")
		}
	}
}
