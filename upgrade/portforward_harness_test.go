package upgrade

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
	"k8s.io/client-go/rest"
)

// pftTimeout bounds every wait of the port-forward tests.
const pftTimeout = 2 * time.Minute

// pftHarness is a real control plane with ServePortForward in front of it
// on a TLS test server, and backends on loopback that the test kubelet's
// pods reach (the test kubelet forwards to 127.0.0.1:PORT).
type pftHarness struct {
	env        *testenv.Env
	srv        *httptest.Server
	kubeconfig string
	home       string
	logs       *pftBuffer

	// data is served by the HTTP backend at /data; dataPort is its port.
	data     []byte
	dataSum  [32]byte
	dataPort int32
	// hashPort's backend reads until EOF, then replies with the sha256 of
	// what it read and closes.
	hashPort int32
	// closedPort has no listener.
	closedPort int32

	mu        sync.Mutex
	configure func(*PortForwardConfig)
	stats     []PortForwardConnStats
	sessions  map[*pftSession]struct{}
}

// pftSession is a ServePortForward call in progress.
type pftSession struct {
	cancel context.CancelFunc
}

func newPFTHarness(t *testing.T, env *testenv.Env) *pftHarness {
	t.Helper()
	h := &pftHarness{env: env, logs: &pftBuffer{}, home: t.TempDir(), sessions: map[*pftSession]struct{}{}}
	h.startBackends(t)

	certFile, keyFile, err := env.IssueServingCert("pf-test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	apiserver, err := url.Parse(env.APIServerURL)
	if err != nil {
		t.Fatal(err)
	}
	adminTransport, err := rest.TransportFor(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	// Everything but port-forward (kubectl's discovery and pod lookup) goes
	// to the apiserver as the admin.
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(apiserver)
			pr.Out.Header.Del("Authorization")
		},
		Transport: adminTransport,
	}
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("/api/v1/namespaces/{ns}/pods/{pod}/portforward", h.servePortForward)
	h.srv = httptest.NewUnstartedServer(mux)
	h.srv.EnableHTTP2 = false
	h.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)

	h.kubeconfig = filepath.Join(h.home, "kubeconfig")
	if err := env.WriteTokenKubeconfig(h.kubeconfig, h.srv.URL, "dev", "anything"); err != nil {
		t.Fatal(err)
	}
	return h
}

// servePortForward is the test server's port-forward endpoint: the gateway
// would authenticate and authorize first; here it impersonates no one
// unless a test's configure says so.
func (h *pftHarness) servePortForward(w http.ResponseWriter, r *http.Request) {
	u, _ := url.Parse(h.env.APIServerURL)
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	cfg := PortForwardConfig{
		Upstream: rest.CopyConfig(h.env.RESTConfig),
		URL:      u,
		Log:      slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	h.mu.Lock()
	configure := h.configure
	h.mu.Unlock()
	if configure != nil {
		configure(&cfg)
	}
	next := cfg.OnConnection
	cfg.OnConnection = func(st PortForwardConnStats) {
		h.mu.Lock()
		h.stats = append(h.stats, st)
		h.mu.Unlock()
		if next != nil {
			next(st)
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s := &pftSession{cancel: cancel}
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.sessions, s)
		h.mu.Unlock()
	}()
	ServePortForward(w, r.WithContext(ctx), cfg)
}

// setConfigure sets how the next sessions' configs are changed, and resets
// the recorded stats and logs.
func (h *pftHarness) setConfigure(f func(*PortForwardConfig)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.configure = f
	h.stats = nil
	h.logs.Reset()
}

func (h *pftHarness) connStats() []PortForwardConnStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.stats)
}

func (h *pftHarness) activeSessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// cancelSessions cancels every running session's request context.
func (h *pftHarness) cancelSessions() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.sessions {
		s.cancel()
	}
}

func (h *pftHarness) startBackends(t *testing.T) {
	t.Helper()
	h.data = make([]byte, 20<<20)
	rng := rand.NewChaCha8([32]byte{'k', 'u', 'b', 'e', 'g', 'a', 't', 'e'})
	_, _ = rng.Read(h.data)
	h.dataSum = sha256.Sum256(h.data)

	ln := pftListen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/data":
			w.Header().Set("Content-Length", strconv.Itoa(len(h.data)))
			_, _ = w.Write(h.data)
		default:
			_, _ = io.WriteString(w, "hello from the pod\n")
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.dataPort = pftPort(ln)

	hashLn := pftListen(t)
	go func() {
		for {
			c, err := hashLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sum := sha256.New()
				if _, err := io.Copy(sum, c); err == nil {
					_, _ = c.Write(sum.Sum(nil))
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = hashLn.Close() })
	h.hashPort = pftPort(hashLn)

	closed := pftListen(t)
	h.closedPort = pftPort(closed)
	_ = closed.Close()
}

func pftListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func pftPort(ln net.Listener) int32 { return int32(ln.Addr().(*net.TCPAddr).Port) }

// pftKubectl is a running kubectl port-forward.
type pftKubectl struct {
	cmd    *exec.Cmd
	stdout *pftBuffer
	stderr *pftBuffer
	done   chan struct{}
	err    error // valid once done is closed
	// local maps each remote port to kubectl's local address for it.
	local map[int32]string
}

// pftForwardLine is kubectl's line for a listening local port.
var pftForwardLine = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)`)

// startKubectl runs kubectl port-forward through the test server for
// remote ports, over the WebSocket tunnel or SPDY, and waits until it
// listens on every port.
func (h *pftHarness) startKubectl(t *testing.T, websockets bool, ports ...int32) *pftKubectl {
	t.Helper()
	args := []string{"-v=6", "--kubeconfig", h.kubeconfig, "port-forward", "pod/toolbox", "-n", "dev", "--address", "127.0.0.1"}
	for _, p := range ports {
		args = append(args, fmt.Sprintf("0:%d", p))
	}
	cmd := exec.Command("/usr/bin/kubectl", args...)
	cmd.Env = append(os.Environ(), "HOME="+h.home, "KUBECONFIG="+h.kubeconfig,
		"KUBECTL_PORT_FORWARD_WEBSOCKETS="+strconv.FormatBool(websockets))
	k := &pftKubectl{cmd: cmd, stdout: &pftBuffer{}, stderr: &pftBuffer{}, done: make(chan struct{}), local: map[int32]string{}}
	cmd.Stdout, cmd.Stderr = k.stdout, k.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		k.err = cmd.Wait()
		close(k.done)
	}()
	t.Cleanup(func() { k.stop(t) })
	pftWait(t, "kubectl to listen on every port", func() bool {
		select {
		case <-k.done:
			t.Fatalf("kubectl exited: %v\nstdout:\n%s\nstderr:\n%s", k.err, k.stdout, k.stderr)
		default:
		}
		for _, m := range pftForwardLine.FindAllStringSubmatch(k.stdout.String(), -1) {
			remote, _ := strconv.Atoi(m[2])
			k.local[int32(remote)] = "127.0.0.1:" + m[1]
		}
		return len(k.local) == len(ports)
	})
	return k
}

// stop interrupts kubectl, as Ctrl-C does, and waits for it to exit.
func (k *pftKubectl) stop(t *testing.T) {
	select {
	case <-k.done:
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
		t.Errorf("kubectl did not exit on SIGINT; stderr:\n%s", k.stderr)
	}
}

// pftUpgradeLine is client-go's -v=6 line for a successful upgrade.
var pftUpgradeLine = regexp.MustCompile(`(GET|POST) https://\S+/portforward\S* 101 Switching Protocols`)

// upgradeMethods lists the methods of kubectl's successful upgrades.
func (k *pftKubectl) upgradeMethods() []string {
	var out []string
	for _, m := range pftUpgradeLine.FindAllStringSubmatch(k.stderr.String(), -1) {
		out = append(out, m[1])
	}
	return out
}

// pftGet downloads url with a fresh connection.
func pftGet(ctx context.Context, url string) ([]byte, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// pftHashRoundTrip sends payload to the hash backend at addr, half-closes,
// and checks the reply is payload's sha256: it needs half-close to pass
// through every hop.
func pftHashRoundTrip(ctx context.Context, addr string, payload []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if want := sha256.Sum256(payload); !bytes.Equal(got, want[:]) {
		return fmt.Errorf("reply %x, want %x", got, want)
	}
	return nil
}

// pftWait polls cond every 20 ms until it holds, failing the test after
// pftTimeout.
func pftWait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(pftTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// pftBuffer is a bytes.Buffer safe for concurrent use.
type pftBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *pftBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *pftBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *pftBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// pftRelayMarkers name the code whose goroutines a port-forward session
// starts; none may outlive its session.
var pftRelayMarkers = []string{
	"kubegate/upgrade.(*portForward",
	"kubegate/upgrade.portForward",
	"github.com/moby/spdystream",
	"github.com/gorilla/websocket",
	"golang.org/x/net/websocket", // wsstream's, for the legacy protocol
	"k8s.io/apiserver/pkg/util/proxy",
	"k8s.io/client-go/tools/portforward",
	"k8s.io/client-go/transport/",
	"k8s.io/cri-streaming/",
	"k8s.io/streaming/",
}

// pftRelayGoroutines returns the stacks of running goroutines in relay
// code, keyed by goroutine id, except the caller's.
func pftRelayGoroutines() map[string]string { return goroutinesIn(pftRelayMarkers) }

// pftCheckNoLeaks waits until no relay goroutine runs besides those in
// baseline (present before the test began).
func pftCheckNoLeaks(t *testing.T, baseline map[string]string) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var leaked []string
		for id, g := range pftRelayGoroutines() {
			if _, ok := baseline[id]; !ok {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%d relay goroutines outlived their sessions:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		case <-tick.C:
		}
	}
}
