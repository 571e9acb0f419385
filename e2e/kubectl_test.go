package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// protocol is the streaming protocol kubectl uses toward its server.
type protocol struct {
	name string
	// env are the variables that select it.
	env []string
	// method is the HTTP method kubectl's upgrade request uses with it.
	method string
}

var protocols = []protocol{
	{name: "websocket", env: []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true", "KUBECTL_PORT_FORWARD_WEBSOCKETS=true"}, method: "GET"},
	{name: "spdy", env: []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}, method: "POST"},
}

// kubectlBin is the kubectl under test: $KUBECTL, else the machine's.
func kubectlBin() string {
	if k := os.Getenv("KUBECTL"); k != "" {
		return k
	}
	return "/usr/bin/kubectl"
}

// kubectlCmd prepares kubectl with kubeconfig and proto's environment. It
// logs requests (-v=6) so the test can check which protocol was used.
func kubectlCmd(ctx context.Context, kubeconfig string, proto protocol, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, kubectlBin(), append([]string{"-v=6"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Env = append(cmd.Env, proto.env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// result is a finished kubectl run.
type result struct {
	stdout, stderr string
	code           int
}

func runKubectl(t *testing.T, ctx context.Context, kubeconfig string, proto protocol, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := kubectlCmd(ctx, kubeconfig, proto, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// upgradeRe matches client-go's -v=6 line for a successful upgrade.
var upgradeRe = regexp.MustCompile(`(GET|POST) https://\S+/(exec|attach|portforward)\S* 101 Switching Protocols`)

// assertProtocol checks from kubectl's -v=6 log that its upgrade request
// used proto's method.
func assertProtocol(t *testing.T, stderr string, proto protocol) {
	t.Helper()
	m := upgradeRe.FindAllStringSubmatch(stderr, -1)
	if len(m) == 0 {
		t.Fatalf("kubectl log shows no successful upgrade; stderr:\n%s", stderr)
	}
	for _, mm := range m {
		if mm[1] != proto.method {
			t.Fatalf("kubectl upgraded with %s, want %s (%s); stderr:\n%s", mm[1], proto.method, proto.name, stderr)
		}
	}
}

// userOutput drops kubectl's -v=6 log lines (klog format) from stderr.
func userOutput(stderr string) string {
	var keep []string
	klog := regexp.MustCompile(`^[IWEF]\d{4} `)
	for _, l := range strings.Split(stderr, "\n") {
		if l != "" && !klog.MatchString(l) && !strings.HasPrefix(l, "WARNING: version difference") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// waitUntil polls cond every 20 ms until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}
