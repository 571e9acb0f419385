package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// pftLoopbackForwarder is a PortForwarder like the test kubelet's: it
// connects each stream to 127.0.0.1:port and passes half-closes on.
type pftLoopbackForwarder struct{}

func (pftLoopbackForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	tcp := c.(*net.TCPConn)
	defer tcp.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(tcp, stream); err != nil {
			// The pod stopped taking bytes: reset the stream, so that
			// its connection does not wait forever to deliver more.
			if r, ok := stream.(interface{ Reset() error }); ok {
				_ = r.Reset()
			}
		}
		_ = tcp.CloseWrite()
	}()
	_, _ = io.Copy(stream, tcp)
	<-done
	return nil
}

// pftFake is kubegate in front of a fake upstream: cri-streaming's own
// port-forward server, as a kubelet (or an apiserver without the
// PortForwardWebsockets feature) serves it: SPDY and legacy WebSocket, and
// the tunnel only when upstreamTunnel is set.
type pftFake struct {
	front    *httptest.Server
	upstream *httptest.Server
	// upstreamCfg reaches the upstream; tests may change it before use.
	upstreamCfg *rest.Config
	// upstreamTunnel makes the upstream serve the tunnel as an apiserver
	// with PortForwardWebsockets does.
	upstreamTunnel atomic.Bool
	logs           *pftBuffer
	hashPort       int32
	sessions       atomic.Int32
	// killSessions cancels the request context of every session, running
	// or to come, as the gateway does to end sessions.
	killSessions context.CancelFunc
	kill         context.Context
}

func newPFTFake(t testing.TB) *pftFake {
	t.Helper()
	f := &pftFake{logs: &pftBuffer{}}
	f.kill, f.killSessions = context.WithCancel(context.Background())
	t.Cleanup(f.killSessions)
	f.upstream = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.upstreamTunnel.Load() && wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
			proxy.NewTunnelingHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				portforward.ServePortForward(&portForwardTunnelUpgrade{ResponseWriter: w}, r, pftLoopbackForwarder{}, "pod", "", nil,
					portForwardIdleTimeout, portForwardStreamCreationTimeout, portforward.SupportedProtocols)
			})).ServeHTTP(w, r)
			return
		}
		opts, err := portforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		portforward.ServePortForward(w, r, pftLoopbackForwarder{}, "pod", "", opts, portForwardIdleTimeout,
			portForwardStreamCreationTimeout, portforward.SupportedProtocols)
	}))
	f.upstream.EnableHTTP2 = false
	f.upstream.StartTLS()
	t.Cleanup(f.upstream.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.upstream.Certificate().Raw})
	f.upstreamCfg = &rest.Config{Host: f.upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}

	f.front = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.sessions.Add(1)
		defer f.sessions.Add(-1)
		u, _ := url.Parse(f.upstream.URL + r.URL.Path)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(f.kill, cancel)
		defer stop()
		ServePortForward(w, r.WithContext(ctx), PortForwardConfig{
			Upstream: f.upstreamCfg,
			URL:      u,
			Log:      slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
	}))
	f.front.EnableHTTP2 = false
	f.front.StartTLS()
	t.Cleanup(f.front.Close)

	ln := pftListen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := io.ReadAll(c)
				if err == nil {
					_, _ = c.Write(bytes.ToUpper(b))
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	f.hashPort = pftPort(ln)
	return f
}

// dial opens a client session to the front server.
func (f *pftFake) dial(t testing.TB, tunnel bool) *portForwardUpstream {
	t.Helper()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.front.Certificate().Raw})
	cfg := &rest.Config{Host: f.front.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}
	return pftDial(t, cfg, f.front.URL+pftPortForwardPath, tunnel)
}

// TestPortForwardFallsBackToSPDY forwards through an upstream that does
// not speak the tunnel: kubegate's tunnel upgrade is refused, and it uses
// SPDY instead. Half-close passes every hop: the backend answers only
// after reading EOF.
func TestPortForwardFallsBackToSPDY(t *testing.T) {
	baseline := pftRelayGoroutines()
	f := newPFTFake(t)
	for _, tunnel := range []bool{true, false} {
		up := f.dial(t, tunnel)
		for i := range 3 {
			reply, msg, err := pftForward(up.conn, f.hashPort, i, []byte("half-closed"))
			if err != nil || msg != "" || string(reply) != "HALF-CLOSED" {
				t.Fatalf("tunnel %v, connection %d: reply %q, error %q, err %v", tunnel, i, reply, msg, err)
			}
		}
		up.close()
	}
	pftWait(t, "sessions to end", func() bool { return f.sessions.Load() == 0 })
	logs := f.logs.String()
	if strings.Count(logs, "falling back to SPDY") != 2 || strings.Count(logs, `"upstream_protocol":"SPDY/3.1"`) != 2 {
		t.Errorf("want two fallbacks to SPDY upstream; log:\n%s", logs)
	}
	pftCheckNoLeaks(t, baseline)
}

// TestPortForwardThroughProxy dials the upstream through an HTTP CONNECT
// proxy, as kubectl does: the tunnel first, through the proxy, and SPDY,
// through another CONNECT, when the upstream refuses the tunnel.
func TestPortForwardThroughProxy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tunnel   bool // the upstream serves the tunnel
		connects int32
		protocol portForwardClientProtocol
	}{
		{"Tunnel", true, 1, portForwardClientTunnel},
		{"FallbackToSPDY", false, 2, portForwardClientSPDY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := pftRelayGoroutines()
			f := newPFTFake(t)
			f.upstreamTunnel.Store(tc.tunnel)
			var connects atomic.Int32
			var wg sync.WaitGroup
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodConnect {
					http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
					return
				}
				connects.Add(1)
				backend, err := net.Dial("tcp", r.Host)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				w.WriteHeader(http.StatusOK)
				client, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					_ = backend.Close()
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(backend, brw)
					_ = backend.Close()
				}()
				_, _ = io.Copy(client, backend)
				_ = client.Close()
			}))
			defer proxy.Close()
			proxyURL, _ := url.Parse(proxy.URL)
			f.upstreamCfg.Proxy = http.ProxyURL(proxyURL)

			up := f.dial(t, true)
			reply, msg, err := pftForward(up.conn, f.hashPort, 0, []byte("proxied"))
			if err != nil || msg != "" || string(reply) != "PROXIED" {
				t.Fatalf("reply %q, error %q, err %v", reply, msg, err)
			}
			up.close()
			pftWait(t, "sessions to end", func() bool { return f.sessions.Load() == 0 })
			if n := connects.Load(); n != tc.connects {
				t.Errorf("%d CONNECTs through the proxy, want %d", n, tc.connects)
			}
			if logs := f.logs.String(); !strings.Contains(logs, `"upstream_protocol":"`+string(tc.protocol)+`"`) {
				t.Errorf("want %s upstream; log:\n%s", tc.protocol, logs)
			}
			proxy.CloseClientConnections()
			wg.Wait()
			pftCheckNoLeaks(t, baseline)
		})
	}
}

// TestPortForwardUpstreamDial checks a rest.Config with Dial: kubegate
// dials the upstream with it, and over SPDY, even when the upstream
// serves the tunnel, as client-go's tunnel cannot use it.
func TestPortForwardUpstreamDial(t *testing.T) {
	baseline := pftRelayGoroutines()
	f := newPFTFake(t)
	f.upstreamTunnel.Store(true)
	var dials atomic.Int32
	f.upstreamCfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	up := f.dial(t, true)
	reply, msg, err := pftForward(up.conn, f.hashPort, 0, []byte("dialed"))
	if err != nil || msg != "" || string(reply) != "DIALED" {
		t.Fatalf("reply %q, error %q, err %v", reply, msg, err)
	}
	up.close()
	pftWait(t, "sessions to end", func() bool { return f.sessions.Load() == 0 })
	if n := dials.Load(); n != 1 {
		t.Errorf("Dial called %d times, want 1", n)
	}
	if logs := f.logs.String(); strings.Contains(logs, "falling back") || !strings.Contains(logs, `"upstream_protocol":"SPDY/3.1"`) {
		t.Errorf("want SPDY upstream without a tunnel attempt; log:\n%s", logs)
	}
	pftCheckNoLeaks(t, baseline)
}

// TestPortForwardUpstreamStopsReading ends a session while kubegate is
// blocked writing to an upstream that stopped reading (the pod's process
// reads nothing, so the fake kubelet's buffers and then the TCP buffers
// fill), over both upstream protocols: the session must end all the same.
// Closing the SPDY connection alone would not do: it writes frames, which
// wait behind the blocked writer; the network connection must be closed.
func TestPortForwardUpstreamStopsReading(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tunnel bool // the upstream serves the tunnel
	}{{"SPDY", false}, {"Tunnel", true}} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := pftRelayGoroutines()
			f := newPFTFake(t)
			f.upstreamTunnel.Store(tc.tunnel)
			ln := pftListen(t)
			held := make(chan net.Conn, 1)
			go func() {
				if c, err := ln.Accept(); err == nil {
					held <- c // never read
				}
			}()
			stopPod := func() {
				_ = ln.Close()
				select {
				case c := <-held:
					_ = c.Close()
				default:
				}
			}
			defer stopPod()

			up := f.dial(t, false)
			headers := http.Header{}
			headers.Set(portforward.StreamType, portforward.StreamTypeError)
			headers.Set(portforward.PortHeader, strconv.Itoa(int(pftPort(ln))))
			headers.Set(portforward.PortForwardRequestIDHeader, "0")
			errStream, err := up.conn.CreateStream(headers)
			if err != nil {
				t.Fatal(err)
			}
			_ = errStream.Close()
			headers.Set(portforward.StreamType, portforward.StreamTypeData)
			data, err := up.conn.CreateStream(headers)
			if err != nil {
				t.Fatal(err)
			}
			var written atomic.Int64
			writerDone := make(chan struct{})
			go func() {
				defer close(writerDone)
				chunk := make([]byte, 32<<10)
				for {
					n, err := data.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			var last int64
			stable := 0
			pftWait(t, "the client's writes to stall", func() bool {
				n := written.Load()
				if n == last {
					stable++
				} else {
					last, stable = n, 0
				}
				return stable >= 20
			})
			t.Logf("the client wrote %d MiB before stalling", last>>20)
			if !strings.Contains(f.logs.String(), `"upstream_protocol":"`+map[bool]string{false: "SPDY/3.1", true: portForwardTunnelProtocol}[tc.tunnel]+`"`) {
				t.Errorf("wrong upstream protocol; log:\n%s", f.logs)
			}

			f.killSessions()
			pftWait(t, "the session to end", func() bool { return f.sessions.Load() == 0 })
			// The pod's process goes away too, so that the fake kubelet
			// finishes, and the client.
			stopPod()
			up.close()
			<-writerDone
			pftCheckNoLeaks(t, baseline)
		})
	}
}

// TestPortForwardRefusedBeforeUpgrade checks the replies to requests
// refused before anything is hijacked: Kubernetes Status objects.
func TestPortForwardRefusedBeforeUpgrade(t *testing.T) {
	u, _ := url.Parse("https://apiserver.invalid" + pftPortForwardPath)
	ws := func(protocols ...string) http.Header {
		return http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Protocol": {strings.Join(protocols, ", ")},
		}
	}
	for _, tc := range []struct {
		name   string
		cfg    PortForwardConfig
		method string
		query  string
		header http.Header
		code   int
		msg    string
	}{
		{"NoUpstream", PortForwardConfig{URL: u}, http.MethodPost, "", nil, http.StatusInternalServerError, "no upstream rest.Config"},
		{"NoURL", PortForwardConfig{Upstream: &rest.Config{}}, http.MethodPost, "", nil, http.StatusInternalServerError, "no upstream URL"},
		{"UnknownTunnel", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodGet, "", ws("SPDY/3.1+other.k8s.io"), http.StatusBadRequest, "no supported tunneling protocol"},
		{"LegacyNoPorts", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodGet, "", ws("v4.channel.k8s.io"), http.StatusBadRequest, "query parameter ports is required"},
		{"LegacyBadPort", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodGet, "?ports=80,x", ws("v4.channel.k8s.io"), http.StatusBadRequest, "unable to parse"},
		{"NotAnUpgrade", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodPost, "", http.Header{"X-Stream-Protocol-Version": {"portforward.k8s.io"}}, http.StatusBadRequest, "missing upgrade headers"},
		{"NoStreamProtocol", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodPost, "", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}, http.StatusBadRequest, "X-Stream-Protocol-Version"},
		{"HTTP2", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodPost, "", http.Header{"X-Http2": {"yes"}}, http.StatusBadRequest, "needs HTTP/1.1"},
		{"NoHijack", PortForwardConfig{Upstream: &rest.Config{}, URL: u}, http.MethodGet, "?ports=80", http.Header{"X-No-Hijack": {"yes"}}, http.StatusInternalServerError, "cannot be taken over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, pftPortForwardPath+tc.query, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			if req.Header.Get("X-Http2") != "" {
				req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
			}
			rec := httptest.NewRecorder()
			var w http.ResponseWriter = pftNoHijack{rec}
			if req.Header.Get("X-No-Hijack") == "" {
				w = pftFailHijack{rec}
			}
			ServePortForward(w, req, tc.cfg)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("reply %d %q, want %d containing %q", rec.Code, rec.Body, tc.code, tc.msg)
			}
			if ct := rec.Header().Get("Content-Type"); ct == "application/json" {
				var st metav1.Status
				if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Kind != "Status" || st.Code != int32(tc.code) {
					t.Errorf("Status %+v, err %v", st, err)
				}
			}
		})
	}
}

// pftNoHijack is a ResponseWriter that cannot hijack.
type pftNoHijack struct{ http.ResponseWriter }

// pftFailHijack is a ResponseWriter whose Hijack fails: the cases above
// are refused before it is called.
type pftFailHijack struct{ http.ResponseWriter }

func (pftFailHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("no hijacking in this test")
}

// TestPortForwardClassify checks which protocol a request gets.
func TestPortForwardClassify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		header  http.Header
		want    portForwardClientProtocol
		wantErr bool
	}{
		{"SPDY", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}, portForwardClientSPDY, false},
		{"NoUpgrade", nil, portForwardClientSPDY, false},
		{"Tunnel", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"SPDY/3.1+portforward.k8s.io"}}, portForwardClientTunnel, false},
		{"TunnelAmongOthers", http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v4.channel.k8s.io", "x, SPDY/3.1+portforward.k8s.io"}}, portForwardClientTunnel, false},
		{"UnknownTunnel", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"SPDY/3.1+portforward.k8s.io.v2"}}, "", true},
		{"Legacy", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v4.base64.channel.k8s.io"}}, portForwardClientWebSocket, false},
		{"LegacyNoProtocol", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, portForwardClientWebSocket, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header = tc.header
			if req.Header == nil {
				req.Header = http.Header{}
			}
			got, err := portForwardClassify(req)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestPortForwardV4Options checks the legacy WebSocket ports are read from
// the apiserver's ?ports= and the kubelet's ?port=.
func TestPortForwardV4Options(t *testing.T) {
	for _, tc := range []struct {
		query   string
		want    []int32
		wantErr bool
	}{
		{"ports=8080", []int32{8080}, false},
		{"ports=8080,9090", []int32{8080, 9090}, false},
		{"ports=80&ports=443", []int32{80, 443}, false},
		{"port=8080", []int32{8080}, false},
		{"", nil, true},
		{"ports=0", nil, true},
		{"ports=65536", nil, true},
		{"ports=80,", nil, true},
	} {
		t.Run(tc.query, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/pf?"+tc.query, nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			opts, err := portForwardV4Options(req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err == nil && fmt.Sprint(opts.Ports) != fmt.Sprint(tc.want) {
				t.Fatalf("ports %v, want %v", opts.Ports, tc.want)
			}
		})
	}
}

func TestPortForwardPodName(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/dev/pods/toolbox/portforward": "dev/toolbox",
		"/prefix/api/v1/namespaces/a/pods/b/portforward":  "a/b",
		"/odd": "/odd",
	} {
		if got := portForwardPodName(&url.URL{Path: path}); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}

// pftErrWriter fails every write.
type pftErrWriter struct{ err error }

func (w pftErrWriter) Write([]byte) (int, error) { return 0, w.err }

// pftShortWriter writes one byte less than asked.
type pftShortWriter struct{}

func (pftShortWriter) Write(p []byte) (int, error) { return max(len(p)-1, 0), nil }

// pftErrAfterReader returns its data, then err.
type pftErrAfterReader struct {
	r   io.Reader
	err error
}

func (r *pftErrAfterReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		return n, r.err
	}
	return n, err
}

func TestPortForwardCopy(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10_000) // spans several buffers
	errRead, errWrite, errTap := errors.New("read"), errors.New("write"), errors.New("tap")
	for _, tc := range []struct {
		name    string
		dst     func() io.Writer
		src     func() io.Reader
		tap     func([]byte) error
		wantN   int64
		wantErr error
	}{
		{"EOF", func() io.Writer { return &bytes.Buffer{} }, func() io.Reader { return bytes.NewReader(data) }, nil, int64(len(data)), nil},
		{"Empty", func() io.Writer { return &bytes.Buffer{} }, func() io.Reader { return bytes.NewReader(nil) }, nil, 0, nil},
		{"ReadError", func() io.Writer { return &bytes.Buffer{} }, func() io.Reader { return &pftErrAfterReader{bytes.NewReader(data), errRead} }, nil, int64(len(data)), errRead},
		{"WriteError", func() io.Writer { return pftErrWriter{errWrite} }, func() io.Reader { return bytes.NewReader(data) }, nil, 0, errWrite},
		{"ShortWrite", func() io.Writer { return pftShortWriter{} }, func() io.Reader { return bytes.NewReader(data) }, nil, portForwardCopyBufferSize - 1, io.ErrShortWrite},
		{"TapError", func() io.Writer { return &bytes.Buffer{} }, func() io.Reader { return bytes.NewReader(data) }, func([]byte) error { return errTap }, 0, errTap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tapped bytes.Buffer
			tap := tc.tap
			if tap == nil {
				tap = func(p []byte) error { tapped.Write(p); return nil }
			}
			dst := tc.dst()
			n, err := portForwardCopy(dst, tc.src(), tap)
			if n != tc.wantN || !errors.Is(err, tc.wantErr) {
				t.Fatalf("copied %d, %v; want %d, %v", n, err, tc.wantN, tc.wantErr)
			}
			if b, ok := dst.(*bytes.Buffer); ok && tc.tap == nil && !bytes.Equal(b.Bytes(), tapped.Bytes()) {
				t.Errorf("tap saw %d bytes, destination got %d", tapped.Len(), b.Len())
			}
		})
	}
}

// pftChunkReader yields size bytes in chunks of at most len(chunk).
type pftChunkReader struct {
	chunk []byte
	left  int
}

func (r *pftChunkReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunk[:min(len(r.chunk), r.left)])
	r.left -= n
	return n, nil
}

// pftDiscard is io.Discard without io.ReaderFrom, as a stream is.
type pftDiscard struct{}

func (pftDiscard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkPortForwardCopy measures one direction of a connection's relay
// with and without a capture. It should not allocate: the buffer is
// pooled.
func BenchmarkPortForwardCopy(b *testing.B) {
	const size = 8 << 20
	chunk := make([]byte, portForwardCopyBufferSize)
	for _, tc := range []struct {
		name    string
		capture bool
	}{{"Plain", false}, {"Captured", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var tap func([]byte) error
			if tc.capture {
				tap = newPortForwardCapture(pftNopWriteCloser{}, time.Now()).toPod
			}
			src := &pftChunkReader{chunk: chunk}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				src.left = size
				if _, err := portForwardCopy(pftDiscard{}, src, tap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type pftNopWriteCloser struct{ pftDiscard }

func (pftNopWriteCloser) Close() error { return nil }

// BenchmarkPortForwardRelay forwards one connection per iteration through
// kubegate to the fake upstream, 4 MiB each way (the backend echoes in
// upper case after reading EOF), with the client on SPDY or the tunnel;
// upstream is SPDY either way.
func BenchmarkPortForwardRelay(b *testing.B) {
	const size = 4 << 20
	payload := bytes.Repeat([]byte("kubegate"), size/8)
	want := bytes.ToUpper(payload)
	for _, tc := range []struct {
		name   string
		tunnel bool
	}{{"SPDY", false}, {"Tunnel", true}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newPFTFake(b)
			up := f.dial(b, tc.tunnel)
			defer up.close()
			b.SetBytes(2 * size)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				reply, msg, err := pftForward(up.conn, f.hashPort, i, payload)
				if err != nil || msg != "" || !bytes.Equal(reply, want) {
					b.Fatalf("reply of %d bytes, error %q, err %v", len(reply), msg, err)
				}
				i++
			}
		})
	}
}

// TestPortForwardBackPressure stops reading a connection whose pod side
// writes without end: the pod's writes must stall after a bounded amount
// (socket buffers and spdystream's bounded frame queues), as kubegate
// queues nothing itself.
func TestPortForwardBackPressure(t *testing.T) {
	baseline := pftRelayGoroutines()
	f := newPFTFake(t)
	var written atomic.Int64
	ln := pftListen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		chunk := make([]byte, 32<<10)
		for {
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	defer ln.Close()

	up := f.dial(t, true)
	headers := http.Header{}
	headers.Set(portforward.StreamType, portforward.StreamTypeError)
	headers.Set(portforward.PortHeader, strconv.Itoa(int(pftPort(ln))))
	headers.Set(portforward.PortForwardRequestIDHeader, "0")
	errStream, err := up.conn.CreateStream(headers)
	if err != nil {
		t.Fatal(err)
	}
	_ = errStream.Close()
	headers.Set(portforward.StreamType, portforward.StreamTypeData)
	data, err := up.conn.CreateStream(headers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(data, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// Now the client reads nothing more. Wait until the pod's writes
	// stall: no progress across 20 polls (400 ms).
	var last int64
	stable := 0
	pftWait(t, "the pod's writes to stall", func() bool {
		n := written.Load()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		return stable >= 20
	})
	const bound = 64 << 20
	t.Logf("the pod wrote %d MiB before stalling", last>>20)
	if last > bound {
		t.Errorf("the pod wrote %d MiB to a client that stopped reading; want < %d MiB", last>>20, bound>>20)
	}
	up.close()
	pftWait(t, "sessions to end", func() bool { return f.sessions.Load() == 0 })
	pftCheckNoLeaks(t, baseline)
}
