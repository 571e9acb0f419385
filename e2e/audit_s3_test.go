package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/internal/s3test"
	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
)

// auditS3Policy lets the agent do anything RBAC lets it.
const auditS3Policy = `
policy:
  defaultRules: true
  rules:
  - name: discovery
    nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]
    verbs: ["get"]
    action: allow
  - name: agents
    groups: ["dex:agents"]
    action: allow
`

// s3Audit is a kubegate process streaming its audit log to a real S3
// server.
type s3Audit struct {
	srv    *s3test.Server
	hook   *auditHook
	store  audit.ObjectStore
	st     *stack.Stack
	bucket string
	prefix string
}

func startS3Audit(t *testing.T, ctx context.Context, env *testenv.Env, spool string) *s3Audit {
	t.Helper()
	dir := t.TempDir()
	srv, err := s3test.Start(ctx, filepath.Join(dir, "s3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a := &s3Audit{srv: srv, bucket: "audit", prefix: "kg/"}
	if err := srv.CreateBucket(ctx, a.bucket); err != nil {
		t.Fatal(err)
	}
	a.hook = &auditHook{events: map[string][]byte{}}
	hookSrv := httptest.NewServer(a.hook)
	t.Cleanup(hookSrv.Close)
	keyFile, secretFile := filepath.Join(dir, "access-key"), filepath.Join(dir, "secret-key")
	os.WriteFile(keyFile, []byte(srv.AccessKey), 0o600)
	os.WriteFile(secretFile, []byte(srv.SecretKey), 0o600)
	if a.store, err = audit.NewS3Store(ctx, audit.S3Config{Endpoint: srv.Endpoint, Bucket: a.bucket, Prefix: a.prefix,
		PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}); err != nil {
		t.Fatal(err)
	}
	bin, err := buildKubegate()
	if err != nil {
		t.Fatal(err)
	}
	sinks := fmt.Sprintf(`    fsync: true
  sinks:
  - name: archive
    s3:
      endpoint: %s
      bucket: %s
      prefix: %s
      pathStyle: true
      accessKeyIDFile: %s
      secretAccessKeyFile: %s
  - name: siem
    webhook:
      url: %s
%s`, srv.Endpoint, a.bucket, a.prefix, keyFile, secretFile, hookSrv.URL, spool)
	a.st, err = stack.Start(ctx, env, stack.Options{Dir: filepath.Join(dir, "kubegate"), Policy: auditS3Policy, Binary: bin, Audit: sinks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.st.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "kubegate", "kubegate.log"))
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("kubegate log (end):\n%s", b)
		}
	})
	return a
}

// auditHook is an audit webhook receiver that keeps each event once, by its
// audit id, as the sink's contract asks.
type auditHook struct {
	mu      sync.Mutex
	events  map[string][]byte
	batches int
}

func (h *auditHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.batches++
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var ev auditv1.Event
		if json.Unmarshal(l, &ev) != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		h.events[ev.Annotations[audit.AnnotationAuditID]] = l
	}
}

func (h *auditHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// storedEvents reads every event line in the store, dropping repeats of
// an audit id (a batch resent after a crash may overlap).
func (a *s3Audit) storedEvents(t *testing.T, ctx context.Context) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for key, err := range a.store.List(ctx, audit.EventsPrefix) {
		if err != nil {
			t.Fatal(err)
		}
		rc, err := a.store.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var ev auditv1.Event
			if err := json.Unmarshal(l, &ev); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			out[ev.Annotations[audit.AnnotationAuditID]] = l
		}
	}
	return out
}

// localEvents counts the node's local audit log lines.
func localEvents(t *testing.T, path string) int {
	t.Helper()
	files, err := audit.AuditFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

// verify runs `kubegate audit verify` against the store.
func (a *s3Audit) verify(t *testing.T, ctx context.Context) (string, int) {
	t.Helper()
	bin, err := buildKubegate()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "audit", "verify", "--from", "s3://"+a.bucket+"/"+a.prefix,
		"--s3-endpoint", a.srv.Endpoint, "--s3-path-style")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+a.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+a.srv.SecretKey)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), a.srv.SecretKey) {
		t.Error("kubegate audit verify printed the S3 secret")
	}
	return string(out), code
}

// completedRe matches kubectl's -v=6 line for a request that got a
// response, in the format of kubectl before 1.33 ("] GET https://... 200
// OK in 5 milliseconds") and after ("Response" verb="GET" url="https://..."
// status="200 OK").
var completedRe = regexp.MustCompile(`(?m)(\] (GET|POST|PUT|PATCH|DELETE) https://\S+ \d{3} |"Response" verb="\w+" url="https://[^"]+" status="\d{3})`)

// agentLoad runs kubectl as the agent and counts what it saw complete:
// the requests kubectl logged with a status, plus one event per connection
// a port-forward carried. It runs a versioned kubectl, not /usr/bin's
// dispatcher, which asks the server's /version first without logging it.
type agentLoad struct {
	kubeconfig string

	mu        sync.Mutex
	completed int
	execs     []string // markers of exec sessions that exited 0
}

// countingKubectl is the kubectl agentLoad runs.
const countingKubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"

func (l *agentLoad) cmd(ctx context.Context, proto protocol, args ...string) *exec.Cmd {
	cmd := kubectlCmd(ctx, l.kubeconfig, proto, args...)
	cmd.Path, cmd.Args[0] = countingKubectl, countingKubectl
	return cmd
}

func (l *agentLoad) kubectl(t *testing.T, ctx context.Context, proto protocol, args ...string) result {
	t.Helper()
	cmd := l.cmd(ctx, proto, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	r := result{stdout: out.String(), stderr: errOut.String(), code: code}
	l.mu.Lock()
	l.completed += len(completedRe.FindAllString(r.stderr, -1))
	l.mu.Unlock()
	return r
}

// round runs API calls, exec sessions over both protocols and a
// port-forward with two connections.
func (l *agentLoad) round(t *testing.T, ctx context.Context, tag string) {
	t.Helper()
	for i, proto := range protocols {
		if r := l.kubectl(t, ctx, proto, "-n", "dev", "get", "pods"); r.code != 0 {
			t.Fatalf("%s: kubectl get pods: %s", tag, userOutput(r.stderr))
		}
		cm := fmt.Sprintf("audit-%s-%d", tag, i)
		l.kubectl(t, ctx, proto, "-n", "dev", "create", "configmap", cm, "--from-literal=k=v")
		l.kubectl(t, ctx, proto, "-n", "dev", "delete", "configmap", cm)
		marker := fmt.Sprintf("exec-%s-%s", tag, proto.name)
		r := l.kubectl(t, ctx, proto, "-n", "dev", "exec", "toolbox", "--", "echo", marker)
		if r.code != 0 || strings.TrimSpace(r.stdout) != marker {
			t.Fatalf("%s: exec: code %d, stdout %q, stderr %s", tag, r.code, r.stdout, userOutput(r.stderr))
		}
		l.mu.Lock()
		l.execs = append(l.execs, marker)
		l.mu.Unlock()
	}
	l.portForward(t, ctx, tag)
}

func (l *agentLoad) portForward(t *testing.T, ctx context.Context, tag string) {
	t.Helper()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, tag) })}
	go func() { _ = srv.Serve(backend) }()
	defer srv.Close()
	port := backend.Addr().(*net.TCPAddr).Port
	cmd := l.cmd(ctx, protocols[0], "-n", "dev", "port-forward", "pod/toolbox", fmt.Sprintf("0:%d", port), "--address", "127.0.0.1")
	out, stderr := newLockedBuffer(), newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var local string
	if !waitUntil(ctx, func() bool {
		for _, line := range strings.Split(out.String(), "\n") {
			var p int
			if _, err := fmt.Sscanf(line, "Forwarding from 127.0.0.1:%d ->", &p); err == nil {
				local = "127.0.0.1:" + strconv.Itoa(p)
				return true
			}
		}
		return false
	}) {
		t.Fatalf("%s: port-forward never listened: %s", tag, stderr.String())
	}
	for range 2 {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + local + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tag {
			t.Fatalf("%s: port-forward got %q", tag, b)
		}
	}
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	l.mu.Lock()
	l.completed += len(completedRe.FindAllString(stderr.String(), -1)) + 2
	l.mu.Unlock()
}

// TestAuditStreamsToS3ThroughOutageAndCrash: kubectl runs API calls, exec
// sessions and port-forwards through kubegate while its audit log streams
// to a real S3 server; the S3 server goes away for a while, and kubegate
// is killed with SIGKILL under load and restarted. Afterwards `kubegate
// audit verify` passes against the bucket, the bucket holds one event for
// every request kubectl saw complete, and every recording matches its
// sha256. Then one byte of one stored event is changed, and verify names
// that event.
func TestAuditStreamsToS3ThroughOutageAndCrash(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a := startS3Audit(t, ctx, env, "")
	load := &agentLoad{kubeconfig: a.st.Kubeconfigs["agent"]}

	load.round(t, ctx, "up")
	a.srv.Stop()
	outage := time.Now()
	load.round(t, ctx, "s3down")
	// KUBEGATE_E2E_S3_OUTAGE (a duration) keeps the S3 server down that
	// long under load; by default the outage lasts one round.
	if d, err := time.ParseDuration(os.Getenv("KUBEGATE_E2E_S3_OUTAGE")); err == nil {
		for time.Since(outage) < d {
			load.kubectl(t, ctx, protocols[0], "-n", "dev", "get", "pods")
		}
	}

	// SIGKILL while kubectl keeps calling: the call in flight may or may
	// not have its event (it never completed), every completed one must.
	stop := make(chan struct{})
	var loop sync.WaitGroup
	loop.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			load.kubectl(t, ctx, protocols[1], "-n", "dev", "get", "pods")
		}
	})
	load.mu.Lock()
	before := load.completed
	load.mu.Unlock()
	waitUntil(ctx, func() bool { load.mu.Lock(); defer load.mu.Unlock(); return load.completed > before+9 })
	if err := a.st.Kill(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	loop.Wait()
	if err := a.st.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	load.round(t, ctx, "restarted")
	if err := a.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("the S3 server was down for %s", time.Since(outage).Round(time.Second))

	var stored map[string][]byte
	if !waitUntil(ctx, func() bool {
		stored = a.storedEvents(t, ctx)
		return len(stored) == localEvents(t, a.st.AuditPath)
	}) {
		t.Fatalf("the bucket holds %d events, the local log %d", len(stored), localEvents(t, a.st.AuditPath))
	}
	out, code := a.verify(t, ctx)
	if code != 0 {
		t.Fatalf("kubegate audit verify: exit %d:\n%s", code, out)
	}
	// The webhook, a second sink, got the same events, byte for byte.
	if !waitUntil(ctx, func() bool { return a.hook.count() == len(stored) }) {
		t.Errorf("the webhook holds %d events, the bucket %d", a.hook.count(), len(stored))
	}
	a.hook.mu.Lock()
	for id, l := range stored {
		if !bytes.Equal(a.hook.events[id], l) {
			t.Errorf("event %s differs between the bucket and the webhook", id)
		}
	}
	a.hook.mu.Unlock()
	t.Logf("kubegate audit verify:\n%s", out)

	agentEvents, execEvents := 0, map[string]bool{}
	for _, l := range stored {
		var ev auditv1.Event
		_ = json.Unmarshal(l, &ev)
		if !strings.HasPrefix(ev.User.Username, "agent") {
			continue
		}
		agentEvents++
		for _, m := range load.execs {
			if strings.Contains(ev.RequestURI, "command="+m) && ev.Annotations[audit.AnnotationRecordingSHA256] != "" {
				execEvents[m] = true
			}
		}
	}
	t.Logf("kubectl saw %d requests complete; the bucket holds %d of the agent's events (%d in all)", load.completed, agentEvents, len(stored))
	if agentEvents < load.completed || agentEvents > load.completed+1 {
		t.Errorf("the bucket holds %d of the agent's events for %d completed requests (one more is allowed: the call in flight at the kill)", agentEvents, load.completed)
	}
	for _, m := range load.execs {
		if !execEvents[m] {
			t.Errorf("no recorded session event for exec %s", m)
		}
	}

	// Tamper with one stored event (one whose successor is in the same
	// object): verify must name it.
	var key, id string
	var lines [][]byte
	for k, err := range a.store.List(ctx, audit.EventsPrefix) {
		if err != nil {
			t.Fatal(err)
		}
		rc, err := a.store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if lines = bytes.Split(bytes.TrimSpace(b), []byte("\n")); len(lines) >= 2 {
			key = k
			break
		}
	}
	if key == "" {
		t.Fatal("no stored batch holds two events")
	}
	var ev auditv1.Event
	_ = json.Unmarshal(lines[0], &ev)
	id = ev.Annotations[audit.AnnotationAuditID]
	i := bytes.Index(lines[0], []byte(`"stage":"`))
	if i < 0 {
		t.Fatalf("no stage in %s", lines[0])
	}
	lines[0][i+len(`"stage":"`)] ^= 0x20 // ResponseComplete -> responseComplete
	tampered := append(bytes.Join(lines, []byte("\n")), '\n')
	if err := a.store.Put(ctx, key, bytes.NewReader(tampered), int64(len(tampered))); err != nil {
		t.Fatal(err)
	}
	out, code = a.verify(t, ctx)
	if code == 0 || !strings.Contains(out, id) {
		t.Errorf("after changing one byte of event %s, verify exits %d:\n%s", id, code, out)
	}
}

// TestAuditFailsClosedWhenS3IsDown: with the S3 server down and the spool
// past its bound, new requests get a 503 Status naming the cause.
func TestAuditFailsClosedWhenS3IsDown(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a := startS3Audit(t, ctx, env, "  spool:\n    maxBacklogBytes: 20000\n    onFull: fail-closed\n")
	a.srv.Stop()
	agent := a.st.Kubeconfigs["agent"]
	var last result
	if !waitUntil(ctx, func() bool {
		last = runKubectl(t, ctx, agent, protocols[0], nil, "-n", "dev", "get", "configmaps")
		return last.code != 0
	}) {
		t.Fatal("kubegate kept serving with its audit sink down past the spool's bound")
	}
	msg := userOutput(last.stderr)
	if !strings.Contains(msg, "audit events cannot be delivered") || !strings.Contains(msg, "archive") {
		t.Errorf("kubectl printed %q; want the cause", msg)
	}
	if !strings.Contains(last.stderr, " 503 ") {
		t.Errorf("want a 503; stderr:\n%s", last.stderr)
	}
	if err := a.srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(ctx, func() bool {
		return runKubectl(t, ctx, agent, protocols[0], nil, "-n", "dev", "get", "configmaps").code == 0
	}) {
		t.Fatal("kubegate did not serve again once its sink caught up")
	}
}
