package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/kubegate/kubegate/internal/testenv"
)

// testTimeout bounds each case so a hung client fails the test instead of
// hanging CI; it is no performance limit.
const testTimeout = 2 * time.Minute

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSmokeGetNamespaces(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r := runKubectl(t, ctx, env.AdminKubeconfig, protocols[0], nil, "get", "ns", "-o", "name")
	if r.code != 0 {
		t.Fatalf("kubectl get ns: exit %d: %s", r.code, userOutput(r.stderr))
	}
	for _, ns := range append([]string{"default"}, env.Namespaces...) {
		if !strings.Contains(r.stdout, "namespace/"+ns+"\n") {
			t.Errorf("kubectl get ns: %q missing from\n%s", ns, r.stdout)
		}
	}
}

// TestSmokeStreams runs the streaming cases straight against the apiserver:
// the harness itself must be sound before kubegate is put in front of it.
func TestSmokeStreams(t *testing.T) {
	runStreamCases(t, testenv.Get(t).AdminKubeconfig, 1<<20, 3<<20, 10<<20)
}

// runStreamCases runs every streaming case over both protocols with a
// kubeconfig (direct, or through kubegate).
func runStreamCases(t *testing.T, kubeconfig string, stdinSize, copySize, forwardSize int) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			t.Run("exec exit code", func(t *testing.T) { testExecExitCode(t, kubeconfig, proto) })
			t.Run("exec stdin", func(t *testing.T) { testExecStdin(t, kubeconfig, proto, stdinSize) })
			t.Run("exec tty resize", func(t *testing.T) { testExecTTY(t, kubeconfig, proto) })
			t.Run("attach", func(t *testing.T) { testAttach(t, kubeconfig, proto) })
			t.Run("cp both ways", func(t *testing.T) { testCopy(t, kubeconfig, proto, copySize) })
			t.Run("port-forward", func(t *testing.T) { testPortForward(t, kubeconfig, proto, forwardSize) })
		})
	}
}

func testExecExitCode(t *testing.T, kubeconfig string, proto protocol) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r := runKubectl(t, ctx, kubeconfig, proto, nil, "-n", "dev", "exec", "toolbox", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
	assertProtocol(t, r.stderr, proto)
	if r.code != 7 {
		t.Errorf("exit code %d, want 7; stderr: %s", r.code, userOutput(r.stderr))
	}
	if r.stdout != "out\n" {
		t.Errorf("stdout %q, want %q", r.stdout, "out\n")
	}
	if !strings.Contains(r.stderr, "err\n") {
		t.Errorf("stderr lacks the command's own stderr: %q", userOutput(r.stderr))
	}
}

func testExecStdin(t *testing.T, kubeconfig string, proto protocol, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	data := randomBytes(t, size)
	r := runKubectl(t, ctx, kubeconfig, proto, bytes.NewReader(data), "-n", "dev", "exec", "-i", "toolbox", "--", "sha256sum")
	assertProtocol(t, r.stderr, proto)
	if r.code != 0 {
		t.Fatalf("exit code %d: %s", r.code, userOutput(r.stderr))
	}
	if got, want := strings.Fields(r.stdout), sha256Hex(data); len(got) == 0 || got[0] != want {
		t.Errorf("sha256 in the pod %q, want %s", r.stdout, want)
	}
}

// testExecTTY runs `kubectl exec -it` under a pseudo-terminal, reads the
// terminal size inside the pod, resizes the terminal and reads it again.
func testExecTTY(t *testing.T, kubeconfig string, proto protocol) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// $0 names the session so tests can find its audit event and recording.
	cmd := kubectlCmd(ctx, kubeconfig, proto, "-n", "dev", "exec", "-it", "toolbox", "--", "sh", "-c", "exec sh", "tty-"+proto.name)
	stderr := newLockedBuffer()
	cmd.Stderr = stderr
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := newLockedBuffer()
	go func() { _, _ = io.Copy(out, tty) }()

	send := func(s string) {
		if _, err := io.WriteString(tty, s); err != nil {
			t.Fatalf("writing to the terminal: %v", err)
		}
	}
	// The pod prints its terminal size as "SZ<rows>x<cols>"; the command's
	// echo ("SZ%s") does not match sizeRe, only its output does.
	sizeRe := regexp.MustCompile(`SZ(\d+)x(\d+)`)
	askSize := func() string {
		t.Helper()
		before := len(sizeRe.FindAllString(out.String(), -1))
		send("printf 'SZ%s\\n' \"$(stty size | tr ' ' x)\"\n")
		var last string
		if !waitUntil(ctx, func() bool {
			all := sizeRe.FindAllString(out.String(), -1)
			if len(all) > before {
				last = all[len(all)-1]
				return true
			}
			return false
		}) {
			t.Fatalf("terminal never showed its size; it shows:\n%s\nkubectl stderr:\n%s", out.String(), stderr.String())
		}
		return last
	}
	if got := askSize(); got != "SZ30x100" {
		t.Fatalf("initial terminal size in the pod %s, want SZ30x100", got)
	}
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 42, Cols: 133}); err != nil {
		t.Fatal(err)
	}
	// The resize travels asynchronously; ask until the new size shows.
	if !waitUntil(ctx, func() bool { return askSize() == "SZ42x133" }) {
		t.Fatalf("resize never reached the pod; terminal:\n%s", out.String())
	}
	send("exit 5\n")
	err = cmd.Wait()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 5 {
		t.Errorf("kubectl exec -it exit: %v, want code 5", err)
	}
	assertProtocol(t, stderr.String(), proto)
}

func testAttach(t *testing.T, kubeconfig string, proto protocol) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := kubectlCmd(ctx, kubeconfig, proto, "-n", "dev", "attach", "-i", "toolbox")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, stderr := newLockedBuffer(), newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := "ping-" + proto.name
	// The attach is live once the upgrade succeeded; lines written before
	// that would reach nobody.
	if !waitUntil(ctx, func() bool { return upgradeRe.MatchString(stderr.String()) }) {
		t.Fatalf("attach never upgraded; stderr:\n%s", stderr.String())
	}
	if _, err := io.WriteString(stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(ctx, func() bool { return strings.Contains(out.String(), "got: "+line) }) {
		t.Fatalf("attached container never echoed %q; stdout %q; stderr:\n%s", line, out.String(), stderr.String())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("kubectl attach after stdin closed: %v; stderr:\n%s", err, userOutput(stderr.String()))
	}
	assertProtocol(t, stderr.String(), proto)
}

func testCopy(t *testing.T, kubeconfig string, proto protocol, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	dir := t.TempDir() // the test kubelet's containers share this machine's file system
	data := randomBytes(t, size)
	local := filepath.Join(dir, "local.bin")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	inPod := filepath.Join(dir, "in-pod.bin")
	r := runKubectl(t, ctx, kubeconfig, proto, nil, "-n", "dev", "cp", local, "toolbox:"+inPod)
	if r.code != 0 {
		t.Fatalf("kubectl cp to pod: exit %d: %s", r.code, userOutput(r.stderr))
	}
	assertProtocol(t, r.stderr, proto)
	back := filepath.Join(dir, "back.bin")
	r = runKubectl(t, ctx, kubeconfig, proto, nil, "-n", "dev", "cp", "toolbox:"+inPod, back)
	if r.code != 0 {
		t.Fatalf("kubectl cp from pod: exit %d: %s", r.code, userOutput(r.stderr))
	}
	assertProtocol(t, r.stderr, proto)
	for _, f := range []string{inPod, back} {
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if sha256Hex(got) != sha256Hex(data) {
			t.Errorf("%s: sha256 %s, want %s", filepath.Base(f), sha256Hex(got), sha256Hex(data))
		}
	}
}

func testPortForward(t *testing.T, kubeconfig string, proto protocol, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	data := randomBytes(t, size)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	small := data[:min(len(data), 1<<20)]
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			_, _ = w.Write(small)
			return
		}
		_, _ = w.Write(data)
	})}
	go func() { _ = srv.Serve(backend) }()
	defer srv.Close()

	cmd := kubectlCmd(ctx, kubeconfig, proto, "-n", "dev", "port-forward", "pod/toolbox",
		fmt.Sprintf("0:%d", backend.Addr().(*net.TCPAddr).Port), "--address", "127.0.0.1")
	out, stderr := newLockedBuffer(), newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var local string
	if !waitUntil(ctx, func() bool {
		var port int
		for _, l := range strings.Split(out.String(), "\n") {
			if _, err := fmt.Sscanf(l, "Forwarding from 127.0.0.1:%d ->", &port); err == nil {
				local = "127.0.0.1:" + strconv.Itoa(port)
				return true
			}
		}
		return false
	}) {
		t.Fatalf("port-forward never listened; stdout %q stderr:\n%s", out.String(), stderr.String())
	}
	resp, err := http.Get("http://" + local + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sha256Hex(got) != sha256Hex(data) {
		t.Errorf("downloaded %d bytes, sha256 %s; want %d bytes, %s", len(got), sha256Hex(got), len(data), sha256Hex(data))
	}
	// Twenty connections at once, each its own forwarded stream.
	const parallel = 20
	errs := make(chan error, parallel)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range parallel {
		go func() {
			resp, err := client.Get("http://" + local + "/small")
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && sha256Hex(b) != sha256Hex(small) {
				err = fmt.Errorf("parallel download: %d bytes, sha256 mismatch", len(b))
			}
			errs <- err
		}()
	}
	for range parallel {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	assertProtocol(t, stderr.String(), proto)
}
