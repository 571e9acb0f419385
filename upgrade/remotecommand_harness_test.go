package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/spdystream"
	apiproxy "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// The harness of the exec/attach relay's robustness tests: ServeRemoteCommand
// on a TLS test server (HTTP/1.1 only) in front of a fake apiserver, the
// clients that drive it (client-go's executors, and a hand-driven SPDY
// client for the inputs client-go never sends), a recording Tap, and the
// goroutine-leak check. The WebSocket hand client is in wsexec_test.go.

const (
	// rcTimeout bounds every wait for something that should be prompt.
	rcTimeout = 20 * time.Second
	// rcSlowTimeout bounds the wait for a SPDY session whose client never
	// opens all its streams: cri-streaming gives up only after
	// streamCreationTimeout.
	rcSlowTimeout = streamCreationTimeout + 10*time.Second

	rcExecPath   = "/api/v1/namespaces/dev/pods/toolbox/exec"
	rcAttachPath = "/api/v1/namespaces/dev/pods/toolbox/attach"
)

// rcStreams are the streams a client asks for.
type rcStreams struct{ stdin, stdout, stderr, tty bool }

var (
	rcAll     = rcStreams{stdin: true, stdout: true, stderr: true}
	rcNoStdin = rcStreams{stdout: true, stderr: true}
	rcTTY     = rcStreams{stdin: true, stdout: true, tty: true}
)

// query is the exec query string kubectl sends. The container names the
// session, so a test can tell its sessions' results apart.
func (s rcStreams) query(session string, command ...string) string {
	v := url.Values{}
	for _, c := range command {
		v.Add("command", c)
	}
	v.Set("container", session)
	v.Set("stdin", strconv.FormatBool(s.stdin))
	v.Set("stdout", strconv.FormatBool(s.stdout))
	v.Set("stderr", strconv.FormatBool(s.stderr))
	v.Set("tty", strconv.FormatBool(s.tty))
	return v.Encode()
}

func rcParseStreams(q url.Values) rcStreams {
	return rcStreams{stdin: q.Get("stdin") == "true", stdout: q.Get("stdout") == "true",
		stderr: q.Get("stderr") == "true", tty: q.Get("tty") == "true"}
}

// rcExit3 is the exit error of the fake's commands.
var rcExit3 = utilexec.CodeExitError{Err: errors.New("exit status 3"), Code: 3}

// rcUpstream is a fake apiserver: cri-streaming's exec and attach server as
// a kubelet runs it (SPDY v1 to v4 and legacy WebSocket) over an in-process
// executor, and, as kube-apiserver 1.30+ does, v5 WebSocket requests
// translated to SPDY by the apiserver's own StreamTranslatorHandler (unless
// spdyOnly is set, so the relay's upstream executor falls back to SPDY).
// Its commands:
//
//	echo   copies stdin to stdout until EOF, writes "err" to stderr, exits 3
//	hello  writes "hello\n" to stdout and "err" to stderr, exits 3 ("hello 0": 0)
//	block  waits until the test ends, then exits 0
//	fail   fails without an exit code
//
// Attach is "echo 0": an attach has no exit code (cri-streaming reports any
// attach error as an internal error). Every resize it is given is recorded.
type rcUpstream struct {
	// spdyOnly refuses v5 WebSocket upgrades, as an apiserver before 1.30.
	spdyOnly atomic.Bool
	srv      *httptest.Server
	cfg      *rest.Config
	conns    rcConns
	release  chan struct{}
	once     sync.Once

	mu    sync.Mutex
	sizes []serverremotecommand.TerminalSize
}

var (
	_ serverremotecommand.Executor = (*rcUpstream)(nil)
	_ serverremotecommand.Attacher = (*rcUpstream)(nil)
)

func newRCUpstream(t testing.TB) *rcUpstream {
	t.Helper()
	u := &rcUpstream{release: make(chan struct{})}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.EnableHTTP2 = false
	u.srv.StartTLS()
	u.cfg = &rest.Config{Host: u.srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: rcCAPEM(u.srv)}}
	t.Cleanup(u.close)
	return u
}

func (u *rcUpstream) close() {
	u.once.Do(func() { close(u.release) })
	u.conns.closeAll()
	u.srv.Close()
}

// rcUpstreamStreamTimeout is how long the fake apiserver waits for the
// relay's upstream streams. A session the relay cancels while client-go
// is still creating them (a Tap that fails on the first resize, which is
// recorded as it arrives) leaves the fake waiting this long; kubegate's own
// goroutines are gone at once. Kept well under the leak check's wait.
const rcUpstreamStreamTimeout = 5 * time.Second

func (u *rcUpstream) serve(w http.ResponseWriter, r *http.Request) {
	s := rcParseStreams(r.URL.Query())
	opts := &serverremotecommand.Options{Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr && !s.tty, TTY: s.tty}
	w = &rcHijackWriter{ResponseWriter: w, conns: &u.conns}
	if wsstream.IsWebSocketRequest(r) && slices.Contains(strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ", "), wsProtocolV5) {
		if u.spdyOnly.Load() {
			http.Error(w, "v5.channel.k8s.io is not served here", http.StatusBadRequest)
			return
		}
		// As kube-apiserver: the WebSocket session is re-originated over
		// SPDY, here toward this same server.
		loc, _ := url.Parse(u.srv.URL + r.URL.Path)
		loc.RawQuery = r.URL.RawQuery
		pool := x509.NewCertPool()
		pool.AddCert(u.srv.Certificate())
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		apiproxy.NewStreamTranslatorHandler(loc, tr, 0, apiproxy.Options{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Tty: opts.TTY}).ServeHTTP(w, r)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/attach") {
		serverremotecommand.ServeAttach(w, r, u, "toolbox", "", "main", opts, streamIdleTimeout,
			rcUpstreamStreamTimeout, serverremotecommand.SupportedStreamingProtocols)
		return
	}
	serverremotecommand.ServeExec(w, r, u, "toolbox", "", "main", r.URL.Query()["command"], opts, streamIdleTimeout,
		rcUpstreamStreamTimeout, serverremotecommand.SupportedStreamingProtocols)
}

func (u *rcUpstream) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser, _ bool, resize <-chan serverremotecommand.TerminalSize, _ time.Duration) error {
	u.recordSizes(resize)
	var w io.Writer = io.Discard
	if out != nil {
		w = out
	}
	name := ""
	if len(cmd) > 0 {
		name = cmd[0]
	}
	switch name {
	case "echo":
		if in != nil {
			_, _ = io.Copy(w, in)
		}
	case "hello":
		_, _ = io.WriteString(w, "hello\n")
	case "block":
		select {
		case <-u.release:
		case <-ctx.Done():
		}
		return nil
	case "fail":
		return errors.New("no such container")
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	if errOut != nil {
		_, _ = io.WriteString(errOut, "err")
	}
	if len(cmd) > 1 && cmd[1] == "0" {
		return nil
	}
	return rcExit3
}

func (u *rcUpstream) AttachContainer(ctx context.Context, name, uid, container string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan serverremotecommand.TerminalSize) error {
	return u.ExecInContainer(ctx, name, uid, container, []string{"echo", "0"}, in, out, errOut, tty, resize, 0)
}

// recordSizes records the resizes the upstream receives; its goroutine
// ends when cri-streaming closes the channel with the session.
func (u *rcUpstream) recordSizes(resize <-chan serverremotecommand.TerminalSize) {
	if resize == nil {
		return
	}
	go func() {
		for s := range resize {
			u.mu.Lock()
			u.sizes = append(u.sizes, s)
			u.mu.Unlock()
		}
	}()
}

func (u *rcUpstream) resizes() []serverremotecommand.TerminalSize {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.sizes)
}

// rcHarness is ServeRemoteCommand on a TLS test server in front of an
// rcUpstream. Each session's result goes to results.
type rcHarness struct {
	up      *rcUpstream
	front   *httptest.Server
	conns   rcConns
	logs    *rcBuffer
	results chan rcResult
	pending []rcResult // results taken off results while waiting for another
	active  atomic.Int32
	once    sync.Once
}

// rcResult is how one session ended, as ServeRemoteCommand reported it.
type rcResult struct {
	RemoteCommandResult
	session  string // the query's container
	panicked any    // what ServeRemoteCommand panicked with, if it did
}

// newRCHarness starts a harness; configure, if not nil, changes each
// session's config.
func newRCHarness(t testing.TB, configure func(*RemoteCommandConfig)) *rcHarness {
	t.Helper()
	h := &rcHarness{up: newRCUpstream(t), logs: &rcBuffer{}, results: make(chan rcResult, 64)}
	h.front = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.active.Add(1)
		defer h.active.Add(-1)
		q := r.URL.Query()
		s := rcParseStreams(q)
		u, _ := url.Parse(h.up.srv.URL + r.URL.Path)
		u.RawQuery = r.URL.RawQuery
		cfg := RemoteCommandConfig{
			Upstream: h.up.cfg, URL: u, Attach: strings.HasSuffix(r.URL.Path, "/attach"), Command: q["command"],
			Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr, TTY: s.tty,
			Log: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		if configure != nil {
			configure(&cfg)
		}
		res := rcResult{session: q.Get("container")}
		defer func() {
			// A panic would skip the caller's audit of the session: record
			// it as the result, so the test can fail on it.
			res.panicked = recover()
			h.results <- res
		}()
		res.RemoteCommandResult = ServeRemoteCommand(&rcHijackWriter{ResponseWriter: w, conns: &h.conns}, r, cfg)
	}))
	h.front.EnableHTTP2 = false
	h.front.StartTLS()
	t.Cleanup(h.close)
	return h
}

// close stops both servers and closes every connection they hijacked, also
// those a buggy session left open.
func (h *rcHarness) close() {
	h.once.Do(func() {
		h.conns.closeAll()
		h.front.Close()
		h.up.close()
	})
}

func (h *rcHarness) restConfig() *rest.Config {
	return &rest.Config{Host: h.front.URL, TLSClientConfig: rest.TLSClientConfig{CAData: rcCAPEM(h.front)}}
}

func (h *rcHarness) url(path, query string) *url.URL {
	u, _ := url.Parse(h.front.URL + path)
	u.RawQuery = query
	return u
}

// exec runs a session with client-go's WebSocket (v5) or SPDY executor.
func (h *rcHarness) exec(ctx context.Context, websocket bool, path, query string, opts clientremotecommand.StreamOptions) error {
	u := h.url(path, query)
	var e clientremotecommand.Executor
	var err error
	if websocket {
		e, err = clientremotecommand.NewWebSocketExecutor(h.restConfig(), http.MethodGet, u.String())
	} else {
		e, err = clientremotecommand.NewSPDYExecutor(h.restConfig(), http.MethodPost, u)
	}
	if err != nil {
		return err
	}
	return e.StreamWithContext(ctx, opts)
}

// wait returns the result of the named session, failing the test if it has
// not ended within d.
func (h *rcHarness) wait(t testing.TB, session string, d time.Duration) rcResult {
	t.Helper()
	res, ok := h.waitFor(session, d)
	if !ok {
		t.Fatalf("session %q did not end within %s; relay log:\n%s", session, d, h.logs)
	}
	return res
}

// waitFor is wait that reports a timeout instead of failing.
func (h *rcHarness) waitFor(session string, d time.Duration) (rcResult, bool) {
	if i := slices.IndexFunc(h.pending, func(r rcResult) bool { return r.session == session }); i >= 0 {
		res := h.pending[i]
		h.pending = slices.Delete(h.pending, i, i+1)
		return res, true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case res := <-h.results:
			if res.session == session {
				return res, true
			}
			h.pending = append(h.pending, res)
		case <-timer.C:
			return rcResult{}, false
		}
	}
}

// checkAlive runs a normal SPDY exec on the same server: after bad input,
// the server must still serve one.
func (h *rcHarness) checkAlive(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rcTimeout)
	defer cancel()
	var out, errOut rcBuffer
	err := h.exec(ctx, false, rcExecPath, rcAll.query("alive", "echo"), clientremotecommand.StreamOptions{
		Stdin: strings.NewReader("still alive"), Stdout: &out, Stderr: &errOut,
	})
	if rcExitCode(err) != 3 {
		t.Fatalf("a normal exec after the bad one: err %v, want exit code 3; relay log:\n%s", err, h.logs)
	}
	if out.String() != "still alive" || errOut.String() != "err" {
		t.Fatalf("a normal exec after the bad one: stdout %q, stderr %q", out.String(), errOut.String())
	}
	if res := h.wait(t, "alive", rcTimeout); res.Err != nil || res.ExitCode != 3 {
		t.Fatalf("a normal exec after the bad one: result %+v", res)
	}
}

// finish checks the server is alive and idle, shuts the harness down and
// checks no relay goroutine is left from those not in baseline.
func (h *rcHarness) finish(t testing.TB, baseline map[string]string) {
	t.Helper()
	h.checkAlive(t)
	rcWaitFor(t, "the relay's handlers to return", rcTimeout, func() bool { return h.active.Load() == 0 })
	h.close()
	rcCheckNoLeaks(t, baseline)
}

// rcExitCode is a client's exit code: 0 for no error, -1 for an error that
// is not an exit.
func rcExitCode(err error) int {
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr) && exitErr.Exited():
		return exitErr.ExitStatus()
	}
	return -1
}

// rcCheckResultFailed checks res reports a failed session.
func rcCheckResultFailed(t testing.TB, res rcResult) {
	t.Helper()
	if res.panicked != nil {
		t.Fatalf("ServeRemoteCommand panicked: %v", res.panicked)
	}
	if res.Err == nil {
		t.Errorf("result %+v, want an error", res.RemoteCommandResult)
	}
}

// rcRelayMarkers name the code whose goroutines a session starts, on
// either side of the relay or in the test's clients.
var rcRelayMarkers = []string{
	"kubegate/upgrade.ServeRemoteCommand",
	"kubegate/upgrade.(*relay)",
	"kubegate/upgrade.serveWebSocket",
	"kubegate/upgrade.readResizes",
	"kubegate/upgrade.(*rcUpstream)",
	"github.com/moby/spdystream",
	"github.com/gorilla/websocket",
	"golang.org/x/net/websocket",
	"k8s.io/cri-streaming/",
	"k8s.io/streaming/",
	"k8s.io/client-go/tools/remotecommand",
}

// rcGoroutines returns the stacks of running relay goroutines by id,
// except the caller's.
func rcGoroutines() map[string]string { return goroutinesIn(rcRelayMarkers) }

// rcLeaked waits up to d for every relay goroutine not in baseline to end
// and returns the stacks of those that did not.
func rcLeaked(baseline map[string]string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var leaked []string
		for id, g := range rcGoroutines() {
			if _, ok := baseline[id]; !ok {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || !time.Now().Before(deadline) {
			return leaked
		}
		<-tick.C
	}
}

func rcCheckNoLeaks(t testing.TB, baseline map[string]string) {
	t.Helper()
	if leaked := rcLeaked(baseline, rcTimeout); len(leaked) > 0 {
		t.Fatalf("%d relay goroutines outlived their sessions:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// rcWaitFor polls cond until it holds, failing the test after d.
func rcWaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

func rcCAPEM(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// rcDialTLS opens a TLS connection to s, bounded by ctx.
func rcDialTLS(ctx context.Context, s *httptest.Server) (*tls.Conn, error) {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}
	c, err := d.DialContext(ctx, "tcp", s.Listener.Addr().String())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return c.(*tls.Conn), nil
}

// rcConns are the connections a server's handlers hijacked.
type rcConns struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *rcConns) add(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns = append(c.conns, conn)
}

func (c *rcConns) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

// rcHijackWriter records the connection its handler hijacks.
type rcHijackWriter struct {
	http.ResponseWriter
	conns *rcConns
}

func (w *rcHijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.conns.add(c)
	}
	return c, rw, err
}

// rcBuffer is a bytes.Buffer safe for concurrent use.
type rcBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *rcBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *rcBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rcTap is a Tap that records what it is given, and fails with err on the
// method named by failOn ("input", "output", "errorOutput", "resize").
type rcTap struct {
	failOn string
	err    error

	mu                  sync.Mutex
	input, output, errs bytes.Buffer
	sizes               [][2]uint16
	inFlight            atomic.Int32
	concurrent          atomic.Bool // two calls overlapped (the Tap contract is silent on this)
}

var _ Tap = (*rcTap)(nil)

func (t *rcTap) call(method string, f func()) error {
	if t.inFlight.Add(1) > 1 {
		t.concurrent.Store(true)
	}
	defer t.inFlight.Add(-1)
	if method == t.failOn {
		return t.err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
	return nil
}

func (t *rcTap) Input(p []byte) error { return t.call("input", func() { t.input.Write(p) }) }
func (t *rcTap) Output(p []byte) error {
	return t.call("output", func() { t.output.Write(p) })
}
func (t *rcTap) ErrorOutput(p []byte) error {
	return t.call("errorOutput", func() { t.errs.Write(p) })
}
func (t *rcTap) Resize(w, h uint16) error {
	return t.call("resize", func() { t.sizes = append(t.sizes, [2]uint16{w, h}) })
}

func (t *rcTap) recorded() (input, output, errs string, sizes [][2]uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.input.String(), t.output.String(), t.errs.String(), slices.Clone(t.sizes)
}

// rcSizeQueue hands a fixed list of terminal sizes to client-go, then ends.
type rcSizeQueue struct {
	mu    sync.Mutex
	sizes []clientremotecommand.TerminalSize
}

func (q *rcSizeQueue) Next() *clientremotecommand.TerminalSize {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sizes) == 0 {
		return nil
	}
	s := q.sizes[0]
	q.sizes = q.sizes[1:]
	return &s
}

// rawUpgrade sends an upgrade request for an exec on a new TLS connection
// and reads the response. On a 101 the connection is the client's to use.
func (h *rcHarness) rawUpgrade(ctx context.Context, method, query string, header http.Header) (net.Conn, *http.Response, error) {
	c, err := rcDialTLS(ctx, h.front)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest(method, h.url(rcExecPath, query).String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = header
	if err := req.Write(c); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	return &rcBufConn{Conn: c, r: br}, resp, nil
}

// rcBufConn reads through the reader that read the upgrade response.
type rcBufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *rcBufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func rcSPDYHeader(protocol string) http.Header {
	return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}, "X-Stream-Protocol-Version": {protocol}}
}

// upgradeSPDY upgrades a new connection to SPDY v4 for query.
func (h *rcHarness) upgradeSPDY(ctx context.Context, t testing.TB, query string) net.Conn {
	t.Helper()
	c, resp, err := h.rawUpgrade(ctx, http.MethodPost, query, rcSPDYHeader("v4.channel.k8s.io"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return c
}

// rcSPDY is a hand-driven SPDY exec client: it opens exactly the streams a
// case asks for, in its order, on spdystream.
type rcSPDY struct {
	raw  net.Conn
	conn *spdystream.Connection

	mu      sync.Mutex
	streams []*spdystream.Stream
}

func (h *rcHarness) dialSPDY(ctx context.Context, t testing.TB, query string) *rcSPDY {
	t.Helper()
	raw := h.upgradeSPDY(ctx, t, query)
	conn, err := spdystream.NewConnection(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	go conn.Serve(spdystream.NoOpStreamHandler)
	c := &rcSPDY{raw: raw, conn: conn}
	t.Cleanup(c.close)
	return c
}

// open creates a stream of the given type; with wait, it waits for the
// server's reply.
func (c *rcSPDY) open(t testing.TB, streamType string, wait bool) *spdystream.Stream {
	t.Helper()
	hdr := http.Header{}
	hdr.Set(serverremotecommand.StreamType, streamType)
	s, err := c.conn.CreateStream(hdr, nil, false)
	if err != nil {
		t.Fatalf("creating a %s stream: %v", streamType, err)
	}
	c.mu.Lock()
	c.streams = append(c.streams, s)
	c.mu.Unlock()
	if wait {
		if err := s.WaitTimeout(rcTimeout); err != nil {
			t.Fatalf("waiting for the reply to the %s stream: %v", streamType, err)
		}
	}
	return s
}

// refused opens a stream the server must refuse, and waits for the
// refusal (a stream reset before any reply).
func (c *rcSPDY) refused(t testing.TB, streamType string) {
	t.Helper()
	hdr := http.Header{}
	hdr.Set(serverremotecommand.StreamType, streamType)
	s, err := c.conn.CreateStream(hdr, nil, false)
	if err != nil {
		t.Fatalf("creating a %s stream: %v", streamType, err)
	}
	if err := s.WaitTimeout(rcTimeout); err == nil {
		t.Errorf("the server accepted a %s stream it should refuse", streamType)
	}
}

// close resets every stream first: spdystream's frame worker blocks on a
// stream's data until someone reads it or the stream is reset.
func (c *rcSPDY) close() {
	c.mu.Lock()
	for _, s := range c.streams {
		_ = s.Reset()
	}
	c.mu.Unlock()
	_ = c.conn.Close()
	_ = c.raw.Close()
}

// rcReadAll reads every reader to EOF concurrently. If ctx ends first, it
// closes conn to unblock them and reports what it has.
func rcReadAll(ctx context.Context, conn io.Closer, readers ...io.Reader) ([]string, error) {
	out := make([]rcBuffer, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Go(func() { _, _ = io.Copy(&out[i], r) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		_ = conn.Close()
		<-done
		err = ctx.Err()
	}
	got := make([]string, len(out))
	for i := range out {
		got[i] = out[i].String()
	}
	return got, err
}

// rcClient is a test client's connection to the relay.
type rcClient interface {
	// closedWithin reports whether the server closed the connection
	// within d.
	closedWithin(d time.Duration) bool
	io.Closer
}

// rcRawClient is a connection the test writes raw bytes on.
type rcRawClient struct{ net.Conn }

func (c rcRawClient) closedWithin(d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func (c *rcSPDY) closedWithin(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.conn.CloseChan():
		return true
	case <-timer.C:
		return false
	}
}

func (c *rcSPDY) Close() error {
	c.close()
	return nil
}
