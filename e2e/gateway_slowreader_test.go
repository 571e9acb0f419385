package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// slowWriter is a client that reads its output slowly: it pauses before
// every write it takes.
type slowWriter struct {
	pause time.Duration
	n     int
	sum   hash.Hash
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.pause)
	w.n += len(p)
	w.sum.Write(p)
	return len(p), nil
}

// TestGatewaySlowReaderGetsEveryByte: a client that reads an exec's output
// more slowly than the pod writes it still gets all of it and a clean
// exit, over both client protocols. The pod finishes, and its kubelet
// connection closes, seconds before the client has read the tail; pings
// sent meanwhile (client-go pings every 5 s) must not make the apiserver
// or kubegate drop the tail. Against the apiserver directly, client-go's
// SPDY executor loses part of it and reports exit 0 here, and its WebSocket
// executor gets "connection reset by peer".
func TestGatewaySlowReaderGetsEveryByte(t *testing.T) {
	g := gateway(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", g.agentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	line := []byte("kubegate slow reader\n")
	want := sha256.Sum256(bytes.Repeat(line, size/len(line)+1)[:size])
	u, _ := url.Parse(cfg.Host)
	u.Path = "/api/v1/namespaces/dev/pods/toolbox/exec"
	u.RawQuery = url.Values{"container": {"main"}, "stdout": {"true"}, "stderr": {"true"},
		"command": {"sh", "-c", "yes 'kubegate slow reader' | head -c " + strconv.Itoa(size)}}.Encode()
	// Each pause makes the client take well over 5 s for the output.
	for _, c := range []struct {
		name  string
		pause time.Duration
		mk    func() (remotecommand.Executor, error)
	}{
		{"spdy", 20 * time.Millisecond, func() (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
		}},
		{"websocket", 10 * time.Millisecond, func() (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ex, err := c.mk()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			out := &slowWriter{pause: c.pause, sum: sha256.New()}
			var errOut bytes.Buffer
			start := time.Now()
			err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: out, Stderr: &errOut})
			t.Logf("%d bytes in %s", out.n, time.Since(start).Round(time.Millisecond))
			if err != nil {
				t.Errorf("exec ended with %v, want a clean exit (stderr %q)", err, errOut.String())
			}
			if out.n != size || !bytes.Equal(out.sum.Sum(nil), want[:]) {
				t.Errorf("got %d bytes (sha256 match %t), want %d", out.n, bytes.Equal(out.sum.Sum(nil), want[:]), size)
			}
		})
	}
}
