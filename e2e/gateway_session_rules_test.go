package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/upgrade"
)

// TestGatewaySessionLimits checks a rule's idle timeout and maximum
// duration: the session ends and kubectl says why.
func TestGatewaySessionLimits(t *testing.T) {
	g := gateway(t)
	cases := []struct {
		name, script, why string
		stdin             bool
	}{
		{"idle timeout", "echo bounded-session-idle; cat", "idle for 1s", true},
		{"maximum duration", "while true; do echo bounded-session-max; sleep 0.2; done", "maximum duration of 3s", false},
	}
	for _, tc := range cases {
		for _, proto := range protocols {
			t.Run(tc.name+"/"+proto.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				args := []string{"exec", "toolbox", "--", "sh", "-c", tc.script}
				if tc.stdin {
					args = []string{"exec", "-i", "toolbox", "--", "sh", "-c", tc.script}
				}
				cmd := kubectlCmd(ctx, g.agentKubeconfig, proto, args...)
				stdin, err := cmd.StdinPipe() // kept open: the session is idle, not over
				if err != nil {
					t.Fatal(err)
				}
				defer stdin.Close()
				out, stderr := newLockedBuffer(), newLockedBuffer()
				cmd.Stdout, cmd.Stderr = out, stderr
				if err := cmd.Run(); err == nil {
					t.Fatalf("kubectl exited cleanly; stdout %q", out.String())
				}
				if !strings.Contains(stderr.String(), tc.why) {
					t.Errorf("kubectl does not say %q:\n%s", tc.why, userOutput(stderr.String()))
				}
				if !strings.Contains(out.String(), "bounded-session") {
					t.Errorf("the session never ran; stdout %q", out.String())
				}
			})
		}
	}
}

// TestGatewayCapturesForwards checks that a rule with captureForwards
// writes each forwarded connection's bytes, both ways, to a capture file.
func TestGatewayCapturesForwards(t *testing.T) {
	g := gateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	payload := strings.Repeat("captured bytes\n", 1000)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload))) // one contiguous body, not chunks
		_, _ = io.WriteString(w, payload)
	})}
	go func() { _ = srv.Serve(backend) }()
	defer srv.Close()
	port := backend.Addr().(*net.TCPAddr).Port
	cmd := kubectlCmd(ctx, g.botKubeconfig, protocols[1], "port-forward", "pod/toolbox", fmt.Sprintf("0:%d", port), "--address", "127.0.0.1")
	out, stderr := newLockedBuffer(), newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var local string
	if !waitUntil(ctx, func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			var p int
			if _, err := fmt.Sscanf(l, "Forwarding from 127.0.0.1:%d ->", &p); err == nil {
				local = "127.0.0.1:" + strconv.Itoa(p)
				return true
			}
		}
		return false
	}) {
		t.Fatalf("port-forward never listened: %s", stderr.String())
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + local + "/capture-me")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != payload {
		t.Fatalf("download through the forward differs")
	}
	resp.Body.Close()

	recordings := filepath.Join(filepath.Dir(g.auditPath), "recordings")
	var toPod, fromPod string
	if !waitUntil(ctx, func() bool {
		files, _ := filepath.Glob(filepath.Join(recordings, "*", fmt.Sprintf("*-%d-*.pfcap", port)))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			toPod, fromPod = "", ""
			for len(b) > 0 {
				rec, n, err := upgrade.ParsePortForwardCaptureRecord(b)
				if err != nil || n == 0 {
					break
				}
				if rec.ToPod {
					toPod += string(rec.Data)
				} else {
					fromPod += string(rec.Data)
				}
				b = b[n:]
			}
			if strings.Contains(toPod, "GET /capture-me") && strings.Contains(fromPod, payload) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no capture holds the request and the response; to pod %q, from pod %d bytes", toPod, len(fromPod))
	}
}
