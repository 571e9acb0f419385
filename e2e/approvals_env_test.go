package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kgw "github.com/kubegate/kubegate/gateway"
	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// approvalsPolicy holds agents' changes and sessions in prod for people to
// approve. The node runs as a child process, so tests can kill it.
const approvalsPolicy = `
approvals:
  webhooks:
  - url: %WEBHOOK%
    format: slack
policy:
  defaultRules: true
  approvers:
    groups: ["dex:approvers", "dex:platform-admins"]
  rules:
  - name: secrets-need-two-people
    groups: ["dex:agents"]
    namespaces: ["prod"]
    resources: ["secrets"]
    verbs: ["delete"]
    action: require-approval
    approvers: {count: 2}
  - name: short-holds
    groups: ["dex:agents"]
    namespaces: ["prod"]
    names: ["short-*"]
    verbs: ["delete"]
    action: require-approval
    holdTimeout: 2s
  - name: prod-changes-need-approval
    groups: ["dex:agents"]
    namespaces: ["prod"]
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
    action: require-approval
    allowIfGranted: true
    message: changes in prod need a person's approval
    auditLevel: Request
  - name: discovery
    nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]
    verbs: ["get"]
    action: allow
  - name: agents
    groups: ["dex:agents"]
    action: allow
    auditLevel: Request
  - name: people
    groups: ["dex:approvers", "dex:platform-admins"]
    action: allow
`

// approvalsEnv is a kubegate child process with approvalsPolicy, and the
// webhook receiver it notifies.
type approvalsEnv struct {
	st  *stack.Stack
	bin string
	env *testenv.Env
	// hook records the webhook posts.
	hook *hookReceiver
}

var (
	apOnce sync.Once
	apEnv  *approvalsEnv
	apErr  error
)

func approvals(t *testing.T) *approvalsEnv {
	t.Helper()
	env := testenv.Get(t)
	apOnce.Do(func() { apEnv, apErr = startApprovals(env) })
	if apErr != nil {
		t.Fatalf("starting kubegate for approvals: %v", apErr)
	}
	return apEnv
}

func startApprovals(env *testenv.Env) (*approvalsEnv, error) {
	bin, err := buildKubegate()
	if err != nil {
		return nil, err
	}
	hook := &hookReceiver{}
	srv := httptest.NewServer(hook)
	dir := filepath.Join(env.Dir, "kubegate-approvals")
	st, err := stack.Start(context.Background(), env, stack.Options{
		Dir:    dir,
		Policy: strings.Replace(approvalsPolicy, "%WEBHOOK%", srv.URL, 1),
		Binary: bin,
	})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &approvalsEnv{st: st, bin: bin, env: env, hook: hook}, nil
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// buildKubegate builds cmd/kubegate once per test binary.
func buildKubegate() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kubegate-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "kubegate")
		out, err := exec.Command("go", "build", "-o", buildBin, "../cmd/kubegate").CombinedOutput()
		if err != nil {
			buildErr = errors.New("building kubegate: " + err.Error() + "\n" + string(out))
		}
	})
	return buildBin, buildErr
}

// kubegate runs the kubegate CLI with a kubeconfig, as a person would.
func (a *approvalsEnv) kubegate(t *testing.T, ctx context.Context, kubeconfig string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubegate %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func (a *approvalsEnv) kubeconfig(user string) string { return a.st.Kubeconfigs[user] }

// requests lists access requests as user sees them.
func (a *approvalsEnv) requests(t *testing.T, ctx context.Context, user string) []kgw.RequestView {
	t.Helper()
	r := a.kubegate(t, ctx, a.kubeconfig(user), "requests", "-o", "json")
	if r.code != 0 {
		t.Fatalf("kubegate requests: exit %d: %s", r.code, r.stderr)
	}
	var list kgw.RequestList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("kubegate requests -o json: %v\n%s", err, r.stdout)
	}
	return list.Items
}

// waitPending waits until a pending access request whose summary contains
// what appears, and returns it.
func (a *approvalsEnv) waitPending(t *testing.T, ctx context.Context, what string) kgw.RequestView {
	t.Helper()
	var found kgw.RequestView
	ok := waitUntil(ctx, func() bool {
		for _, r := range a.requests(t, ctx, "approver") {
			if r.State == "pending" && strings.Contains(r.Summary, what) {
				found = r
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no pending access request for %q appeared; kubegate log %s", what, a.st.LogPath())
	}
	return found
}

// background runs kubectl until it exits; done closes then.
type background struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{}
	code   int
}

func startKubectl(t *testing.T, ctx context.Context, kubeconfig string, stdin io.Reader, args ...string) *background {
	t.Helper()
	b := &background{stdout: newLockedBuffer(), stderr: newLockedBuffer(), done: make(chan struct{})}
	b.cmd = kubectlCmd(ctx, kubeconfig, protocols[0], args...)
	b.cmd.Stdin = stdin
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := b.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			b.code = ee.ExitCode()
		case err != nil:
			b.code = -1
		}
		close(b.done)
	}()
	return b
}

// wait returns the result once kubectl has exited, or fails the test when
// ctx ends first.
func (b *background) wait(t *testing.T, ctx context.Context) result {
	t.Helper()
	select {
	case <-b.done:
	case <-ctx.Done():
		t.Fatalf("kubectl %v never finished; stderr:\n%s", b.cmd.Args, userOutput(b.stderr.String()))
	}
	return result{stdout: b.stdout.String(), stderr: b.stderr.String(), code: b.code}
}

// running reports whether kubectl is still running.
func (b *background) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// hookReceiver is a webhook receiver that keeps every post.
type hookReceiver struct {
	mu    sync.Mutex
	posts []hookPost
}

type hookPost struct {
	EventID string
	Body    map[string]any
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var body map[string]any
	if err != nil || json.Unmarshal(b, &body) != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.posts = append(h.posts, hookPost{EventID: r.Header.Get("X-Kubegate-Event-Id"), Body: body})
	h.mu.Unlock()
	_, _ = w.Write([]byte("ok"))
}

// find returns the posts whose event id (request id/type/time) and body
// together mention all of words.
func (h *hookReceiver) find(words ...string) []hookPost {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookPost
	for _, p := range h.posts {
		b, _ := json.Marshal(p.Body)
		text := p.EventID + " " + string(b)
		all := true
		for _, w := range words {
			all = all && strings.Contains(text, w)
		}
		if all {
			out = append(out, p)
		}
	}
	return out
}

// auditEvent is one line of the audit file.
type auditEvent = auditv1.Event

// findAuditEvent waits for an audit event that match accepts: kubegate
// writes a request's event after the client has its reply.
func findAuditEvent(t *testing.T, path string, match func(auditEvent) bool) auditEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var found *auditEvent
	waitUntil(ctx, func() bool {
		for _, ev := range auditEvents(t, path) {
			if match(ev) {
				found = &ev
				return true
			}
		}
		return false
	})
	if found == nil {
		t.Fatalf("no matching audit event in %s", path)
	}
	return *found
}
