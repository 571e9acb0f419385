package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

// pftHTTPGet is an HTTP request a forwarded connection sends to the data
// backend; the backend closes the connection after its reply.
func pftHTTPGet(path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
}

// TestPortForward runs the relay against a real kube-apiserver and test
// kubelet, driven by the real kubectl and by kubegate's own dialer. One
// control plane serves every subtest (starting one takes seconds). After
// each subtest every session must have ended and left no goroutine behind.
func TestPortForward(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	baseline := pftRelayGoroutines()
	ctx, cancel := context.WithTimeout(t.Context(), pftTimeout*5)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	h := newPFTHarness(t, env)

	for _, tc := range []struct {
		name string
		run  func(*testing.T, *pftHarness)
	}{
		{"KubectlSPDY", func(t *testing.T, h *pftHarness) { testPortForwardKubectl(t, h, false, "POST") }},
		{"KubectlTunnel", func(t *testing.T, h *pftHarness) { testPortForwardKubectl(t, h, true, "GET") }},
		{"KubectlDeniedSPDY", func(t *testing.T, h *pftHarness) { testPortForwardKubectlDenied(t, h, false) }},
		{"KubectlDeniedTunnel", func(t *testing.T, h *pftHarness) { testPortForwardKubectlDenied(t, h, true) }},
		{"SessionOutlivesFailedConnections", testPortForwardSessionOutlivesFailures},
		{"LegacyWebSocket", testPortForwardLegacyWebSocket},
		{"Capture", testPortForwardCapture},
		{"CaptureFailure", testPortForwardCaptureFailure},
		{"Impersonation", testPortForwardImpersonation},
		{"UpstreamLost", testPortForwardUpstreamLost},
		{"RequestCancelled", testPortForwardRequestCancelled},
		{"OversizedFrameSPDY", func(t *testing.T, h *pftHarness) { testPortForwardOversizedFrame(t, h, false) }},
		{"OversizedFrameTunnel", func(t *testing.T, h *pftHarness) { testPortForwardOversizedFrame(t, h, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.setConfigure(nil)
			tc.run(t, h)
			pftWait(t, "sessions to end", func() bool { return h.activeSessions() == 0 })
			pftCheckNoLeaks(t, baseline)
		})
	}
}

// testPortForwardKubectl downloads 20 MiB through kubectl, then 20 MiB on
// each of 20 parallel connections, then round-trips through the hash
// backend (which needs half-close) and checks the connection stats.
func testPortForwardKubectl(t *testing.T, h *pftHarness, websockets bool, method string) {
	ctx, cancel := context.WithTimeout(t.Context(), pftTimeout)
	defer cancel()
	k := h.startKubectl(t, websockets, h.dataPort, h.hashPort)
	url := "http://" + k.local[h.dataPort] + "/data"

	got, err := pftGet(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != h.dataSum {
		t.Fatalf("downloaded %d bytes that do not match the pod's %d", len(got), len(h.data))
	}

	const parallel = 20
	errs := make(chan error, parallel)
	for i := range parallel {
		go func() {
			b, err := pftGet(ctx, url)
			if err == nil && sha256.Sum256(b) != h.dataSum {
				err = fmt.Errorf("connection %d: %d bytes that do not match", i, len(b))
			}
			errs <- err
		}()
	}
	for range parallel {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}

	payload := bytes.Repeat([]byte("kubegate "), 100_000)
	if err := pftHashRoundTrip(ctx, k.local[h.hashPort], payload); err != nil {
		t.Fatalf("hash backend through the forward: %v", err)
	}
	var hashStats PortForwardConnStats
	pftWait(t, "the hash connection's stats", func() bool {
		for _, st := range h.connStats() {
			if st.Port == h.hashPort {
				hashStats = st
				return true
			}
		}
		return false
	})
	if hashStats.Err != nil || hashStats.BytesToPod != int64(len(payload)) || hashStats.BytesFromPod != sha256.Size {
		t.Errorf("hash connection stats: err %v, %d bytes to pod, %d from; want nil, %d, %d",
			hashStats.Err, hashStats.BytesToPod, hashStats.BytesFromPod, len(payload), sha256.Size)
	}
	if !hashStats.End.After(hashStats.Start) {
		t.Errorf("hash connection ended %v, before it started %v", hashStats.End, hashStats.Start)
	}

	k.stop(t)
	pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
	stats := h.connStats()
	if len(stats) != 1+parallel+1 {
		t.Errorf("%d connections reported, want %d", len(stats), 1+parallel+1)
	}
	ids := map[string]bool{}
	for _, st := range stats {
		if ids[st.RequestID] {
			t.Errorf("request id %q reported twice", st.RequestID)
		}
		ids[st.RequestID] = true
		if st.Port == h.dataPort && (st.Err != nil || st.BytesFromPod < int64(len(h.data))) {
			t.Errorf("data connection %s: err %v, %d bytes from the pod, want ≥ %d", st.RequestID, st.Err, st.BytesFromPod, len(h.data))
		}
	}
	methods := k.upgradeMethods()
	t.Logf("kubectl upgrades: %v", methods)
	if len(methods) == 0 {
		t.Fatalf("kubectl logged no upgrade; stderr:\n%s", k.stderr)
	}
	for _, m := range methods {
		if m != method {
			t.Errorf("kubectl upgraded with %s, want %s", m, method)
		}
	}
	if len(h.logLines(`"upstream_protocol":"`+string(portForwardClientTunnel)+`"`)) != 1 {
		t.Errorf("kubegate did not open one WebSocket tunnel upstream; log:\n%s", h.logs)
	}
}

// pftDenyHash is an Allow that refuses the hash backend's port.
func (h *pftHarness) denyHash(asked *[]int32, mu *sync.Mutex) func(*PortForwardConfig) {
	return func(cfg *PortForwardConfig) {
		cfg.Allow = func(port int32) error {
			mu.Lock()
			*asked = append(*asked, port)
			mu.Unlock()
			if port == h.hashPort {
				return fmt.Errorf("kubegate: port %d denied by rule %q", port, "no-hash")
			}
			return nil
		}
	}
}

// testPortForwardKubectlDenied checks kubectl shows Allow's refusal.
// kubectl itself then ends its session (client-go closes the connection
// on any connection error since 1.2x), so the session surviving a refusal
// is checked with kubegate's own client in
// testPortForwardSessionOutlivesFailures.
func testPortForwardKubectlDenied(t *testing.T, h *pftHarness, websockets bool) {
	ctx, cancel := context.WithTimeout(t.Context(), pftTimeout)
	defer cancel()
	var mu sync.Mutex
	var asked []int32
	h.setConfigure(h.denyHash(&asked, &mu))
	k := h.startKubectl(t, websockets, h.dataPort, h.hashPort)
	if err := pftHashRoundTrip(ctx, k.local[h.hashPort], []byte("secret")); err == nil {
		t.Fatal("a denied connection reached the pod")
	}
	pftWait(t, "kubectl to print the refusal", func() bool {
		return strings.Contains(k.stderr.String(), `port `+fmt.Sprint(h.hashPort)+` denied by rule \"no-hash\"`) ||
			strings.Contains(k.stderr.String(), `port `+fmt.Sprint(h.hashPort)+` denied by rule "no-hash"`)
	})
	// Nothing was dialed upstream for the refused connection.
	if l := h.logLines("connected to apiserver"); len(l) != 0 {
		t.Errorf("a refused connection dialed the apiserver: %s", l)
	}
	k.stop(t)
	pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
	stats := h.connStats()
	if len(stats) != 1 || !errors.Is(stats[0].Err, ErrPortForwardDenied) || !strings.Contains(stats[0].Err.Error(), "no-hash") {
		t.Errorf("stats %+v, want one connection refused by no-hash", stats)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != h.hashPort {
		t.Errorf("Allow was asked for %v, want [%d]", asked, h.hashPort)
	}
}

// testPortForwardSessionOutlivesFailures forwards, on one session, a
// connection Allow refuses, one the pod refuses (nothing listens) and one
// that works, over both client protocols.
func testPortForwardSessionOutlivesFailures(t *testing.T, h *pftHarness) {
	for _, tunnel := range []bool{false, true} {
		t.Run(map[bool]string{false: "SPDY", true: "Tunnel"}[tunnel], func(t *testing.T) {
			var mu sync.Mutex
			var asked []int32
			h.setConfigure(h.denyHash(&asked, &mu))
			up := h.dialClient(t, tunnel)

			reply, msg, _ := pftForward(up.conn, h.hashPort, 0, []byte("secret"))
			if len(reply) != 0 || !strings.Contains(msg, `denied by rule "no-hash"`) {
				t.Fatalf("denied connection: reply %q, error %q", reply, msg)
			}
			reply, msg, _ = pftForward(up.conn, h.closedPort, 1, pftHTTPGet("/"))
			if len(reply) != 0 || !strings.Contains(msg, "connection refused") {
				t.Fatalf("connection to a closed port: reply %q, error %q", reply, msg)
			}
			reply, msg, err := pftForward(up.conn, h.dataPort, 2, pftHTTPGet("/"))
			if err != nil || msg != "" || !bytes.Contains(reply, []byte("hello from the pod")) {
				t.Fatalf("allowed connection after two failures: err %v, error stream %q, reply %q", err, msg, reply)
			}
			up.close()
			pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })

			stats := h.connStats()
			if len(stats) != 3 {
				t.Fatalf("%d connections reported, want 3: %+v", len(stats), stats)
			}
			byPort := map[int32]PortForwardConnStats{}
			for _, st := range stats {
				byPort[st.Port] = st
			}
			if st := byPort[h.hashPort]; !errors.Is(st.Err, ErrPortForwardDenied) || st.BytesToPod != 0 {
				t.Errorf("denied connection: %+v", st)
			}
			var ue *portForwardUpstreamError
			if st := byPort[h.closedPort]; !errors.As(st.Err, &ue) {
				t.Errorf("refused connection: err %v, want the kubelet's message", st.Err)
			}
			if st := byPort[h.dataPort]; st.Err != nil || st.BytesToPod != int64(len(pftHTTPGet("/"))) || st.BytesFromPod != int64(len(reply)) {
				t.Errorf("allowed connection: %+v, want %d bytes to the pod and %d from it", st, len(pftHTTPGet("/")), len(reply))
			}
		})
	}
}

// testPortForwardLegacyWebSocket downloads through the legacy WebSocket
// protocol, binary and base64, and checks a refusal reaches its error
// channel.
func testPortForwardLegacyWebSocket(t *testing.T, h *pftHarness) {
	var mu sync.Mutex
	var asked []int32
	h.setConfigure(h.denyHash(&asked, &mu))
	for _, proto := range []string{"v4.channel.k8s.io", "v4.base64.channel.k8s.io"} {
		t.Run(proto, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), pftTimeout)
			defer cancel()
			reply, errText, err := h.legacyWebSocket(ctx, proto, h.dataPort, pftHTTPGet("/data"), pftHTTPResponseComplete)
			if err != nil || errText != "" {
				t.Fatalf("err %v, error channel %q", err, errText)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || sha256.Sum256(body) != h.dataSum {
				t.Fatalf("downloaded %d bytes (err %v) that do not match the pod's %d", len(body), err, len(h.data))
			}

			reply, errText, err = h.legacyWebSocket(ctx, proto, h.hashPort, []byte("secret"), pftHTTPResponseComplete)
			if err != nil || len(reply) != 0 || !strings.Contains(errText, `denied by rule "no-hash"`) {
				t.Fatalf("denied port: err %v, reply %q, error channel %q", err, reply, errText)
			}
		})
	}
}

// pftCaptureBuffer is a capture destination in memory.
type pftCaptureBuffer struct {
	pftBuffer
	mu       sync.Mutex
	closed   bool
	failFrom int // writes fail once this many bytes were written; 0 never
	written  int
}

func (b *pftCaptureBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failFrom > 0 && b.written+len(p) > b.failFrom {
		return 0, errors.New("disk full")
	}
	b.written += len(p)
	return b.pftBuffer.Write(p)
}

func (b *pftCaptureBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// testPortForwardCapture checks a capture holds exactly the bytes relayed
// each way.
func testPortForwardCapture(t *testing.T, h *pftHarness) {
	var mu sync.Mutex
	captures := map[string]*pftCaptureBuffer{}
	h.setConfigure(func(cfg *PortForwardConfig) {
		cfg.Capture = func(port int32, requestID string) (io.WriteCloser, error) {
			mu.Lock()
			defer mu.Unlock()
			b := &pftCaptureBuffer{}
			captures[fmt.Sprint(port, "/", requestID)] = b
			return b, nil
		}
	})
	up := h.dialClient(t, true)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 20_000)
	reply, msg, err := pftForward(up.conn, h.hashPort, 0, payload)
	if err != nil || msg != "" {
		t.Fatalf("err %v, error stream %q", err, msg)
	}
	up.close()
	pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })

	mu.Lock()
	defer mu.Unlock()
	c := captures[fmt.Sprint(h.hashPort, "/0")]
	if len(captures) != 1 || c == nil {
		t.Fatalf("captures %v, want one for %d/0", captures, h.hashPort)
	}
	if !c.closed {
		t.Error("the capture was not closed")
	}
	var toPod, fromPod []byte
	b := []byte(c.String())
	var last int64
	for len(b) > 0 {
		rec, n, err := ParsePortForwardCaptureRecord(b)
		if err != nil || n == 0 {
			t.Fatalf("capture record: n %d, err %v", n, err)
		}
		if int64(rec.Offset) < last {
			t.Errorf("record at %v after one at %v", rec.Offset, last)
		}
		last = int64(rec.Offset)
		if rec.ToPod {
			toPod = append(toPod, rec.Data...)
		} else {
			fromPod = append(fromPod, rec.Data...)
		}
		b = b[n:]
	}
	if !bytes.Equal(toPod, payload) || !bytes.Equal(fromPod, reply) {
		t.Errorf("captured %d bytes to the pod and %d from it; want %d and %d", len(toPod), len(fromPod), len(payload), len(reply))
	}
}

// testPortForwardCaptureFailure checks capture fails closed: a capture
// that cannot be opened refuses the connection, one that fails midway ends
// it.
func testPortForwardCaptureFailure(t *testing.T, h *pftHarness) {
	for _, tc := range []struct {
		name    string
		capture func(int32, string) (io.WriteCloser, error)
	}{
		{"Open", func(int32, string) (io.WriteCloser, error) { return nil, errors.New("no space for captures") }},
		{"Write", func(int32, string) (io.WriteCloser, error) { return &pftCaptureBuffer{failFrom: 100_000}, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.setConfigure(func(cfg *PortForwardConfig) { cfg.Capture = tc.capture })
			up := h.dialClient(t, false)
			payload := bytes.Repeat([]byte("x"), 1<<20)
			reply, msg, _ := pftForward(up.conn, h.hashPort, 0, payload)
			if len(reply) != 0 || !strings.Contains(msg, ErrPortForwardCapture.Error()) {
				t.Errorf("reply %q, error stream %q; want the capture failure", reply, msg)
			}
			up.close()
			pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
			stats := h.connStats()
			if len(stats) != 1 || !errors.Is(stats[0].Err, ErrPortForwardCapture) || stats[0].BytesToPod >= int64(len(payload)) {
				t.Errorf("stats %+v, want one connection ended by the capture", stats)
			}
		})
	}
}

// testPortForwardImpersonation forwards as impersonated users: the tunnel
// (a GET upstream) needs get and create on pods/portforward, SPDY (a POST)
// create only, so kubegate falls back to SPDY for a user with create only,
// and a user with neither gets the apiserver's refusal.
func testPortForwardImpersonation(t *testing.T, h *pftHarness) {
	ctx := t.Context()
	for name, verbs := range map[string][]string{"pf-create": {"create"}, "pf-get-create": {"get", "create"}} {
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: verbs}},
		}
		if _, err := h.env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := h.env.Bind(ctx, "dev", name, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: "User", Name: name + "-user"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		user     string
		upstream string // the upstream protocol, "" when refused
		refusal  string
	}{
		{"pf-get-create-user", string(portForwardClientTunnel), ""},
		{"pf-create-user", string(portForwardClientSPDY), ""},
		{"pf-nobody", "", `User "pf-nobody" cannot create resource "pods/portforward"`},
	} {
		t.Run(tc.user, func(t *testing.T) {
			h.setConfigure(func(cfg *PortForwardConfig) {
				cfg.Upstream.Impersonate = rest.ImpersonationConfig{UserName: tc.user}
			})
			up := h.dialClient(t, true)
			reply, msg, _ := pftForward(up.conn, h.dataPort, 0, pftHTTPGet("/"))
			up.close()
			pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
			if tc.upstream == "" {
				if len(reply) != 0 || !strings.Contains(msg, tc.refusal) {
					t.Fatalf("reply %q, error stream %q; want the apiserver's refusal %q", reply, msg, tc.refusal)
				}
				return
			}
			if msg != "" || !bytes.Contains(reply, []byte("hello from the pod")) {
				t.Fatalf("reply %q, error stream %q", reply, msg)
			}
			if l := h.logLines(`"upstream_protocol":"` + tc.upstream + `"`); len(l) != 1 {
				t.Errorf("upstream protocol is not %s; log:\n%s", tc.upstream, h.logs)
			}
		})
	}
}

// pftTCPRelay is a loopback TCP relay in front of an address, whose
// connections a test can cut, as a network failure between kubegate and
// the apiserver would.
type pftTCPRelay struct {
	addr     string
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	wg       sync.WaitGroup
}

func newPFTTCPRelay(t *testing.T, target string) *pftTCPRelay {
	t.Helper()
	ln := pftListen(t)
	r := &pftTCPRelay{addr: ln.Addr().String()}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			backend, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, client, backend)
			r.accepted++
			r.mu.Unlock()
			r.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer r.wg.Done()
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			go pipe(backend, client)
			go pipe(client, backend)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		r.cut()
		r.wg.Wait()
	})
	return r
}

// cut closes every connection relayed so far.
func (r *pftTCPRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

func (r *pftTCPRelay) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

// pftOpenConnection opens a forwarded connection that stays open, and
// waits until kubegate relays it upstream.
func (h *pftHarness) openConnection(t *testing.T, k *pftKubectl) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", k.local[h.hashPort])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte("half a request")); err != nil {
		t.Fatal(err)
	}
	pftWait(t, "the upstream connection", func() bool { return len(h.logLines("connected to apiserver")) == 1 })
	return c
}

// testPortForwardUpstreamLost cuts the apiserver connection under an open
// forwarded connection: the session ends, and kubectl says so. The cut is
// made in a TCP relay between kubegate and the apiserver.
func testPortForwardUpstreamLost(t *testing.T, h *pftHarness) {
	apiserver, err := url.Parse(h.env.APIServerURL)
	if err != nil {
		t.Fatal(err)
	}
	relay := newPFTTCPRelay(t, apiserver.Host)
	h.setConfigure(func(cfg *PortForwardConfig) {
		cfg.URL.Host = relay.addr
		cfg.Upstream.Host = "https://" + relay.addr
	})
	k := h.startKubectl(t, true, h.hashPort)
	c := h.openConnection(t, k)
	if n := relay.connections(); n != 1 {
		t.Fatalf("%d connections through the relay, want 1", n)
	}
	if len(h.logLines(`"upstream_protocol":"`+string(portForwardClientTunnel)+`"`)) != 1 {
		t.Errorf("kubegate did not open a WebSocket tunnel upstream; log:\n%s", h.logs)
	}
	relay.cut()
	pftWait(t, "kubectl to exit", func() bool {
		select {
		case <-k.done:
			return true
		default:
			return false
		}
	})
	if !strings.Contains(k.stderr.String(), "lost connection to pod") {
		t.Errorf("kubectl does not say the connection was lost; stderr:\n%s", k.stderr)
	}
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("local connection ended with %v", err)
	}
	pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
	if stats := h.connStats(); len(stats) != 1 || !errors.Is(stats[0].Err, ErrPortForwardUpstreamLost) {
		t.Errorf("stats %+v, want one connection that lost its upstream", stats)
	}
}

// testPortForwardRequestCancelled cancels the request's context (as the
// gateway does to kill a session) under an open forwarded connection.
func testPortForwardRequestCancelled(t *testing.T, h *pftHarness) {
	k := h.startKubectl(t, false, h.hashPort)
	h.openConnection(t, k)
	h.cancelSessions()
	pftWait(t, "kubectl to exit", func() bool {
		select {
		case <-k.done:
			return true
		default:
			return false
		}
	})
	if !strings.Contains(k.stderr.String(), "lost connection to pod") {
		t.Errorf("kubectl does not say the connection was lost; stderr:\n%s", k.stderr)
	}
	pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
	stats := h.connStats()
	if len(stats) != 1 || !errors.Is(stats[0].Err, ErrPortForwardSessionEnded) || !errors.Is(stats[0].Err, context.Canceled) {
		t.Errorf("stats %+v, want one connection ended with its session", stats)
	}
}

// testPortForwardOversizedFrame: a SPDY data frame over kubegate's limit
// (spdystream would allocate up to 16 MiB for one) ends the session, over
// SPDY and inside the WebSocket tunnel alike, and nothing is forwarded.
func testPortForwardOversizedFrame(t *testing.T, h *pftHarness, tunnel bool) {
	up := h.dialClient(t, tunnel)
	headers := http.Header{}
	headers.Set(portforward.StreamType, portforward.StreamTypeError)
	headers.Set(portforward.PortHeader, strconv.Itoa(int(h.hashPort)))
	headers.Set(portforward.PortForwardRequestIDHeader, "1")
	if _, err := up.conn.CreateStream(headers); err != nil {
		t.Fatal(err)
	}
	headers.Set(portforward.StreamType, portforward.StreamTypeData)
	data, err := up.conn.CreateStream(headers)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = data.Write(make([]byte, spdyMaxDataFrame+1)) }() // one frame
	select {
	case <-up.conn.CloseChan():
	case <-time.After(pftTimeout):
		t.Fatal("kubegate kept the connection of a client that sent an oversized frame")
	}
	pftWait(t, "the session to end", func() bool { return h.activeSessions() == 0 })
	for _, st := range h.connStats() {
		if st.BytesToPod > 0 {
			t.Errorf("forwarded %d bytes of an oversized frame", st.BytesToPod)
		}
	}
}
