package upgrade

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// The exec/attach relay under bad input: each case runs ServeRemoteCommand
// on a TLS test server (HTTP/1.1 only) in front of a fake apiserver, and
// checks that the session ends instead of hanging, that the same server
// still serves a normal exec afterwards, and that no relay goroutine
// outlives the session.

// TestRemoteCommandBadInputHappyPaths proves the harness: client-go's SPDY
// and WebSocket (v5) executors run exec and attach through the relay, the
// fake upstream's stdout, stderr and exit code 3 reach the client, and the
// Tap sees every byte of stdin, stdout and stderr, and the resizes.
func TestRemoteCommandBadInputHappyPaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		websocket bool
		path      string
		streams   rcStreams
		protocol  string
		exitCode  int
	}{
		{"SPDYExec", false, rcExecPath, rcAll, "SPDY/3.1", 3},
		{"WebSocketExec", true, rcExecPath, rcAll, "websocket v5.channel.k8s.io", 3},
		{"SPDYAttach", false, rcAttachPath, rcAll, "SPDY/3.1", 0},
		{"WebSocketAttach", true, rcAttachPath, rcAll, "websocket v5.channel.k8s.io", 0},
		{"SPDYExecTTY", false, rcExecPath, rcTTY, "SPDY/3.1", 3},
		{"WebSocketExecTTY", true, rcExecPath, rcTTY, "websocket v5.channel.k8s.io", 3},
	} {
		for _, up := range []struct {
			name     string
			spdyOnly bool
			protocol string
		}{
			{"UpstreamWebSocket", false, "websocket v5.channel.k8s.io"},
			{"UpstreamSPDY", true, "SPDY/3.1 v4.channel.k8s.io"},
		} {
			t.Run(tc.name+"/"+up.name, func(t *testing.T) {
				baseline := rcGoroutines()
				tap := &rcTap{}
				h := newRCHarness(t, func(c *RemoteCommandConfig) {
					if !strings.HasPrefix(c.URL.Query().Get("container"), "alive") {
						c.Tap = tap
					}
				})
				h.up.spdyOnly.Store(up.spdyOnly)
				ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
				defer cancel()

				// Stdin stays open until the resize has reached the upstream,
				// so the session cannot end before it.
				stdinR, stdinW := io.Pipe()
				var out, errOut rcBuffer
				opts := clientremotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Tty: tc.streams.tty}
				if !tc.streams.tty {
					opts.Stderr = &errOut
				} else {
					opts.TerminalSizeQueue = &rcSizeQueue{sizes: []clientremotecommand.TerminalSize{{Width: 120, Height: 40}}}
				}
				done := make(chan error, 1)
				go func() { done <- h.exec(ctx, tc.websocket, tc.path, tc.streams.query("s", "echo"), opts) }()
				if _, err := io.WriteString(stdinW, "hello relay"); err != nil {
					t.Fatal(err)
				}
				rcWaitFor(t, "stdout to be relayed", rcTimeout, func() bool { return out.String() == "hello relay" })
				if tc.streams.tty {
					rcWaitFor(t, "the resize to reach the upstream", rcTimeout, func() bool { return len(h.up.resizes()) == 1 })
				}
				_ = stdinW.Close()
				err := <-done

				if code := rcExitCode(err); code != tc.exitCode {
					t.Fatalf("client error %v, want exit code %d", err, tc.exitCode)
				}
				wantErr := "err"
				if tc.streams.tty {
					wantErr = "" // no stderr with a tty
				}
				if got := errOut.String(); got != wantErr {
					t.Errorf("stderr %q, want %q", got, wantErr)
				}
				res := h.wait(t, "s", rcTimeout)
				if res.panicked != nil || res.Err != nil || res.ExitCode != tc.exitCode || res.RecordingErr != nil {
					t.Errorf("result %+v, panic %v; want exit code %d, no error", res.RemoteCommandResult, res.panicked, tc.exitCode)
				}
				if !strings.HasPrefix(res.Protocol, tc.protocol) {
					t.Errorf("protocol %q, want %q", res.Protocol, tc.protocol)
				}
				if res.Protocol == "SPDY/3.1" {
					t.Errorf("RemoteCommandResult.Protocol is %q, without the negotiated version", res.Protocol)
				}
				if res.UpstreamProtocol != up.protocol {
					t.Errorf("upstream protocol %q, want %q", res.UpstreamProtocol, up.protocol)
				}
				in, output, errs, sizes := tap.recorded()
				if in != "hello relay" || output != "hello relay" || errs != wantErr {
					t.Errorf("tap saw stdin %q, stdout %q, stderr %q", in, output, errs)
				}
				if tc.streams.tty && !slices.Equal(sizes, [][2]uint16{{120, 40}}) {
					t.Errorf("tap saw resizes %v, want [[120 40]]", sizes)
				}
				if got := h.up.resizes(); tc.streams.tty && (len(got) != 1 || got[0] != (serverremotecommand.TerminalSize{Width: 120, Height: 40})) {
					t.Errorf("upstream saw resizes %v", got)
				}
				h.finish(t, baseline)
			})
		}
	}
}

// TestRemoteCommandBadInputSPDY sends malformed or unexpected SPDY to the
// relay; the session must end (with an error, unless the input is merely
// refused) and the server must live on, leaving no goroutine behind. These
// cases end promptly; those that wait for the stream creation timeout are
// in TestRemoteCommandBadInputSPDYStreamTimeout.
func TestRemoteCommandBadInputSPDY(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, t *testing.T, h *rcHarness)
	}{
		{name: "UnknownStreamTypeIsRefused", run: testSPDYUnknownStreamTypeRefused},
		{name: "ZlibBombOverHeaderLimits", run: testSPDYZlibBombOverHeaderLimits},
		{name: "DataFrameOverLimit", run: testSPDYDataFrameOverLimit},
		{name: "MissingProtocolVersion", run: func(ctx context.Context, t *testing.T, h *rcHarness) {
			testSPDYRefusedUpgrade(ctx, t, h, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}, http.StatusBadRequest)
		}},
		{name: "UnsupportedProtocolVersion", run: func(ctx context.Context, t *testing.T, h *rcHarness) {
			testSPDYRefusedUpgrade(ctx, t, h, rcSPDYHeader("v9.channel.k8s.io"), http.StatusForbidden)
		}},
		{name: "NoUpgradeHeaders", run: func(ctx context.Context, t *testing.T, h *rcHarness) {
			testSPDYRefusedUpgrade(ctx, t, h, http.Header{"X-Stream-Protocol-Version": {"v4.channel.k8s.io"}}, http.StatusBadRequest)
		}},
		{name: "MissingErrorStream", run: testSPDYMissingErrorStream},
		{name: "BadResizeOnTTYThenMore", run: testSPDYBadResizeOnTTY},
		{name: "ResizeStreamAfterStart", run: testSPDYStreamAfterStart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := rcGoroutines()
			h := newRCHarness(t, nil)
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			tc.run(ctx, t, h)
			h.finish(t, baseline)
		})
	}
}

// testSPDYUnknownStreamTypeRefused: a stream of an unknown type, sent
// before the real ones, is refused at once and the session runs as usual.
func testSPDYUnknownStreamTypeRefused(ctx context.Context, t *testing.T, h *rcHarness) {
	c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
	c.refused(t, "bogus")
	errStream := c.open(t, serverremotecommand.StreamTypeError, true)
	stdin := c.open(t, serverremotecommand.StreamTypeStdin, true)
	stdout := c.open(t, serverremotecommand.StreamTypeStdout, true)
	stderr := c.open(t, serverremotecommand.StreamTypeStderr, true)
	if _, err := stdin.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	got, err := rcReadAll(ctx, c.raw, stdout, stderr, errStream)
	if err != nil {
		t.Fatalf("reading the streams: %v (got %q)", err, got)
	}
	if got[0] != "hi" || got[1] != "err" || !strings.Contains(got[2], `"reason":"NonZeroExitCode"`) {
		t.Errorf("stdout %q, stderr %q, error stream %q", got[0], got[1], got[2])
	}
	if res := h.wait(t, "s", rcTimeout); res.Err != nil || res.ExitCode != 3 {
		t.Errorf("result %+v", res.RemoteCommandResult)
	}
	c.close()
}

// testSPDYZlibBombOverHeaderLimits: SPDY header blocks are zlib-compressed,
// and spdystream's default limits (1000 headers, 1 MiB per name or value)
// would let one SYN_STREAM inflate to about 2 GiB. kubegate sets its own
// (32 headers of 8 KiB): this frame carries 32 MiB of header values
// compressed to a few KiB, and the session fails at once.
func testSPDYZlibBombOverHeaderLimits(ctx context.Context, t *testing.T, h *rcHarness) {
	c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
	hdr := http.Header{}
	hdr.Set(serverremotecommand.StreamType, serverremotecommand.StreamTypeError)
	value := strings.Repeat("a", 1<<20)
	for i := range 32 {
		hdr.Set(fmt.Sprintf("x-bomb-%d", i), value)
	}
	// The write may fail: the server can close before it has all of it.
	_, _ = c.conn.CreateStream(hdr, nil, false)
	rcCheckResultFailed(t, h.wait(t, "s", rcTimeout))
	if !c.closedWithin(rcTimeout) {
		t.Error("the server kept the connection of a client that sent a zlib bomb")
	}
	c.close()
}

// testSPDYDataFrameOverLimit: a data frame over kubegate's limit (256 KiB;
// SPDY allows 16 MiB, which spdystream would allocate whole) ends the
// session before the frame is read.
func testSPDYDataFrameOverLimit(ctx context.Context, t *testing.T, h *rcHarness) {
	c := h.dialSPDY(ctx, t, rcAll.query("s", "block"))
	c.open(t, serverremotecommand.StreamTypeError, true)
	stdin := c.open(t, serverremotecommand.StreamTypeStdin, true)
	c.open(t, serverremotecommand.StreamTypeStdout, true)
	c.open(t, serverremotecommand.StreamTypeStderr, true)
	// Once the upstream runs: cancelled while client-go still creates its
	// upstream streams, the relay would leave client-go waiting up to its
	// 30 s stream-creation timeout.
	rcWaitFor(t, "the upstream command to start", rcTimeout, func() bool {
		return slices.ContainsFunc(slices.Collect(maps.Values(rcGoroutines())), func(g string) bool {
			return strings.Contains(g, "(*rcUpstream).ExecInContainer")
		})
	})
	go func() { _, _ = stdin.Write(make([]byte, spdyMaxDataFrame+1)) }()
	res := h.wait(t, "s", rcTimeout)
	rcCheckResultFailed(t, res)
	if !c.closedWithin(rcTimeout) {
		t.Error("the server kept the connection of a client that sent an oversized frame")
	}
	c.close()
}

// testSPDYRefusedUpgrade: a request the SPDY handshake refuses gets a plain
// HTTP error, and the session's result must say it failed.
func testSPDYRefusedUpgrade(ctx context.Context, t *testing.T, h *rcHarness, header http.Header, status int) {
	c, resp, err := h.rawUpgrade(ctx, http.MethodPost, rcAll.query("s", "echo"), header)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp.StatusCode != status {
		t.Errorf("status %s, want %d", resp.Status, status)
	}
	if status == http.StatusForbidden && resp.Header.Get("X-Accepted-Stream-Protocol-Versions") == "" {
		t.Error("a refused protocol version got no X-Accepted-Stream-Protocol-Versions")
	}
	rcCheckResultFailed(t, h.wait(t, "s", rcTimeout))
}

// testSPDYMissingErrorStream: a non-tty v4 client that opens a resize
// stream in place of the error stream. The resize stream is refused, the
// session waits for its error stream, and fails as soon as the client
// leaves.
func testSPDYMissingErrorStream(ctx context.Context, t *testing.T, h *rcHarness) {
	c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
	c.open(t, serverremotecommand.StreamTypeStdin, true)
	c.open(t, serverremotecommand.StreamTypeStdout, true)
	c.open(t, serverremotecommand.StreamTypeStderr, true)
	c.refused(t, serverremotecommand.StreamTypeResize)
	c.close()
	res := h.wait(t, "s", rcTimeout)
	rcCheckResultFailed(t, res)
	if !errors.Is(res.Err, ErrNoSession) {
		t.Errorf("result %+v, want %v", res.RemoteCommandResult, ErrNoSession)
	}
}

// testSPDYBadResizeOnTTY: a tty v4 session gets a resize that is not JSON,
// then 100 more. Resizing ends at the bad one, as over WebSocket, and the
// rest of the resize stream is read and dropped, so that it cannot stall
// spdystream's frame workers (and stdin with them): the session runs on.
func testSPDYBadResizeOnTTY(ctx context.Context, t *testing.T, h *rcHarness) {
	c := h.dialSPDY(ctx, t, rcTTY.query("s", "echo"))
	errStream := c.open(t, serverremotecommand.StreamTypeError, true)
	stdin := c.open(t, serverremotecommand.StreamTypeStdin, true)
	stdout := c.open(t, serverremotecommand.StreamTypeStdout, true)
	resize := c.open(t, serverremotecommand.StreamTypeResize, true)
	for i := range 101 {
		msg := []byte(`{"Width":80,"Height":24}`)
		if i == 0 {
			msg = []byte("not json")
		}
		if _, err := resize.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = stdin.Write([]byte("hi"))
	_ = stdin.Close()
	sessionCtx, cancel := context.WithTimeout(ctx, rcTimeout/2)
	defer cancel()
	got, err := rcReadAll(sessionCtx, c.raw, stdout, errStream)
	if err == nil {
		if got[0] != "hi" || !strings.Contains(got[1], "NonZeroExitCode") {
			t.Errorf("stdout %q, error stream %q", got[0], got[1])
		}
		if up := h.up.resizes(); len(up) != 0 {
			t.Errorf("upstream got resizes %v after a bad one", up)
		}
		if res := h.wait(t, "s", rcTimeout); res.Err != nil || res.ExitCode != 3 {
			t.Errorf("result %+v", res.RemoteCommandResult)
		}
		return
	}
	t.Errorf("after a bad resize and 100 more, the session stalled: %v", err)
	h.wait(t, "s", rcTimeout)
}

// testSPDYStreamAfterStart: a non-tty v4 session, running, gets one more
// stream (a resize, which it has no use for). It is refused at once, and
// the session completes.
func testSPDYStreamAfterStart(ctx context.Context, t *testing.T, h *rcHarness) {
	c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
	errStream := c.open(t, serverremotecommand.StreamTypeError, true)
	stdin := c.open(t, serverremotecommand.StreamTypeStdin, true)
	stdout := c.open(t, serverremotecommand.StreamTypeStdout, true)
	stderr := c.open(t, serverremotecommand.StreamTypeStderr, true)
	if _, err := stdin.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("stdout %q, %v", buf, err)
	}
	c.refused(t, serverremotecommand.StreamTypeResize)
	_ = stdin.Close()
	got, err := rcReadAll(ctx, c.raw, stdout, stderr, errStream)
	if err != nil {
		t.Fatalf("the session did not end: %v", err)
	}
	if !strings.Contains(got[2], `"reason":"NonZeroExitCode"`) {
		t.Errorf("error stream %q", got[2])
	}
	if res := h.wait(t, "s", rcTimeout); res.Err != nil || res.ExitCode != 3 {
		t.Errorf("result %+v", res.RemoteCommandResult)
	}
	c.close()
}

// TestRemoteCommandBadInputSPDYStreamTimeout: SPDY clients that send bad
// frames, or never open the streams their exec asks for. A bad frame ends
// the session at once; missing streams are waited for until
// streamCreationTimeout (30 s) or until the client leaves, so every case
// starts first and then each is checked against its own deadline: the
// test takes one timeout, not one per case. Each session must end with an
// error, the server must not keep a connection it gave up on, and no
// goroutine may outlive the sessions.
func TestRemoteCommandBadInputSPDYStreamTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 30 s stream creation timeout")
	}
	baseline := rcGoroutines()
	bomb := &rcZlibBomb{}
	cases := []struct {
		name  string
		start func(ctx context.Context, t testing.TB, h *rcHarness) rcClient
		// closedAtOnce: the server must close the connection as soon as it
		// reads the bad input.
		closedAtOnce bool
		// ended, if set, runs once the session has ended.
		ended func(t *testing.T)
		// check checks the session's result; nil means rcCheckResultFailed.
		check func(t *testing.T, res rcResult)
	}{
		// First, so that little else runs while it measures.
		{name: "ZlibBombOverFrameLimit", closedAtOnce: true, start: bomb.start, ended: bomb.check},
		{name: "UnknownControlFrame", closedAtOnce: true, start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			return rcSendFile(ctx, t, h, "spdy-unknown-control-frame.bin")
		}},
		{name: "GarbageText", closedAtOnce: true, start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			return rcSendFile(ctx, t, h, "spdy-garbage-text.bin")
		}},
		{name: "CorruptZlibHeaderBlock", closedAtOnce: true, start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			return rcSendFile(ctx, t, h, "spdy-corrupt-zlib.bin")
		}},
		{name: "NoStreams", start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			return rcRawClient{h.upgradeSPDY(ctx, t, rcAll.query("s", "echo"))}
		}},
		// Stdin data on a session whose other streams never come: nothing
		// reads it, so spdystream's frame worker blocks handing it over
		// until the session resets the stream when it gives up.
		{name: "StdinDataThenNoMoreStreams", start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
			c.open(t, "error", true)
			stdin := c.open(t, "stdin", true)
			for range 2 { // the first is read by nobody, the second blocks the worker
				_, _ = stdin.Write([]byte("hi"))
			}
			return c
		}},
		{name: "UnknownStreamTypeInsteadOfStderr", start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
			for _, st := range []string{"error", "stdin", "stdout"} {
				c.open(t, st, true)
			}
			c.refused(t, "bogus")
			return c
		}},
		// A non-tty client opens a resize stream in place of stderr: it is
		// refused, and stderr never comes.
		{name: "ResizeInsteadOfStderr", start: func(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
			c := h.dialSPDY(ctx, t, rcAll.query("s", "echo"))
			for _, st := range []string{"error", "stdin", "stdout"} {
				s := c.open(t, st, true)
				if st == "stdin" {
					_, _ = s.Write([]byte("hi"))
					_ = s.Close()
				}
			}
			c.refused(t, "resize")
			return c
		}},
	}
	type started struct {
		h      *rcHarness
		client rcClient
		at     time.Time
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*rcSlowTimeout)
	defer cancel()
	runs := make([]started, len(cases))
	for i, tc := range cases {
		h := newRCHarness(t, nil)
		runs[i] = started{h: h, client: tc.start(ctx, t, h), at: time.Now()}
	}
	for i, tc := range cases {
		h, client := runs[i].h, runs[i].client
		t.Run(tc.name, func(t *testing.T) {
			defer h.close()
			defer client.Close()
			if tc.closedAtOnce && !client.closedWithin(rcTimeout) {
				t.Error("the server did not close a connection that sent it an invalid frame")
			}
			res, ok := h.waitFor("s", time.Until(runs[i].at.Add(rcSlowTimeout)))
			if !ok {
				t.Fatalf("the session did not end within %s", rcSlowTimeout)
			}
			if tc.check != nil {
				tc.check(t, res)
			} else {
				rcCheckResultFailed(t, res)
			}
			if tc.ended != nil {
				tc.ended(t)
			}
			if !tc.closedAtOnce && !client.closedWithin(time.Second) {
				t.Error("the session gave up on its streams, but the server left the client's connection open")
			}
			_ = client.Close()
			h.checkAlive(t)
			rcWaitFor(t, "the relay's handlers to return", rcTimeout, func() bool { return h.active.Load() == 0 })
		})
	}
	for _, r := range runs {
		r.h.close()
	}
	if leaked := rcLeaked(baseline, 5*time.Second); len(leaked) > 0 {
		t.Fatalf("%d relay goroutines outlived their sessions:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// rcSendFile upgrades to SPDY and sends the bytes of a testdata file.
func rcSendFile(ctx context.Context, t testing.TB, h *rcHarness, name string) rcClient {
	b, err := os.ReadFile("testdata/remotecommand/" + name)
	if err != nil {
		t.Fatal(err)
	}
	c := h.upgradeSPDY(ctx, t, rcAll.query("s", "echo"))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return rcRawClient{c}
}

// rcZlibBomb sends a SYN_STREAM whose header block is a zlib stream of
// 256 MiB (a header value declared 1 GiB long, then zeros) compressed to
// about 256 KiB. The server must refuse the frame by its declared length
// (over kubegate's 64 KiB control frame limit) without inflating any of it.
//
// Nothing tells when the server has read the frame, so the memory is
// measured from the write to the session's end; the case runs first, so
// that only the other cases' set-up runs meanwhile.
type rcZlibBomb struct {
	before runtime.MemStats
	size   int
}

func (b *rcZlibBomb) start(ctx context.Context, t testing.TB, h *rcHarness) rcClient {
	var block bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&block, zlib.BestCompression)
	prefix := binary.BigEndian.AppendUint32(nil, 1) // one header
	prefix = binary.BigEndian.AppendUint32(prefix, uint32(len("streamtype")))
	prefix = append(prefix, "streamtype"...)
	prefix = binary.BigEndian.AppendUint32(prefix, 1<<30)
	_, _ = zw.Write(prefix)
	zeros := make([]byte, 1<<20)
	for range 256 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	frame := []byte{0x80, 3, 0, 1} // SYN_STREAM, version 3
	frame = binary.BigEndian.AppendUint32(frame, uint32(10+block.Len()))
	frame = binary.BigEndian.AppendUint32(frame, 1) // stream id
	frame = binary.BigEndian.AppendUint32(frame, 0) // associated stream
	frame = append(frame, 0, 0)                     // priority, slot
	frame = append(frame, block.Bytes()...)
	b.size = len(frame)

	c := h.upgradeSPDY(ctx, t, rcAll.query("s", "echo"))
	runtime.ReadMemStats(&b.before)
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	return rcRawClient{c}
}

func (b *rcZlibBomb) check(t *testing.T) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - b.before.TotalAlloc
	t.Logf("zlib bomb of %d KiB (256 MiB inflated): %d MiB allocated by the whole test binary meanwhile", b.size>>10, alloc>>20)
	if alloc > 128<<20 {
		t.Errorf("%d MiB allocated while the server read a zlib bomb", alloc>>20)
	}
}

// TestRemoteCommandBadInputTap: a Tap that fails. Failing closed (the
// default), the session ends at once, the data the Tap refused does not
// reach the other side, RecordingErr holds the Tap's error and the client
// sees an error that names the recording. Failing open, the session
// completes and only RecordingErr tells.
func TestRemoteCommandBadInputTap(t *testing.T) {
	tapErr := errors.New("disk full")
	for _, tc := range []struct {
		failOn   string
		failOpen bool
	}{
		{"input", false}, {"output", false}, {"errorOutput", false}, {"resize", false},
		{"input", true}, {"output", true}, {"errorOutput", true}, {"resize", true},
	} {
		for _, websocket := range []bool{false, true} {
			name := fmt.Sprintf("%s/failOpen=%t/websocket=%t", tc.failOn, tc.failOpen, websocket)
			t.Run(name, func(t *testing.T) {
				baseline := rcGoroutines()
				tap := &rcTap{failOn: tc.failOn, err: tapErr}
				h := newRCHarness(t, func(c *RemoteCommandConfig) {
					if c.URL.Query().Get("container") == "s" {
						c.Tap, c.ContinueWithoutRecording = tap, tc.failOpen
					}
				})
				ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
				defer cancel()
				streams := rcAll
				var sizes *rcSizeQueue
				if tc.failOn == "resize" {
					streams = rcTTY
					sizes = &rcSizeQueue{sizes: []clientremotecommand.TerminalSize{{Width: 80, Height: 24}}}
				}
				stdinR, stdinW := io.Pipe()
				defer stdinW.Close()
				var out, errOut rcBuffer
				opts := clientremotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Tty: streams.tty}
				if sizes != nil {
					opts.TerminalSizeQueue = sizes
				} else {
					opts.Stderr = &errOut
				}
				done := make(chan error, 1)
				go func() { done <- h.exec(ctx, websocket, rcExecPath, streams.query("s", "echo"), opts) }()
				_, _ = io.WriteString(stdinW, "hi")
				if tc.failOn == "errorOutput" {
					_ = stdinW.Close() // the fake writes stderr at stdin's EOF
				}
				if tc.failOpen {
					// The session goes on: it ends when stdin does, once
					// the failing call has been made.
					rcWaitFor(t, "the tap to have been called", rcTimeout, func() bool { return out.String() == "hi" })
					if tc.failOn == "resize" {
						rcWaitFor(t, "the resize to reach the upstream", rcTimeout, func() bool { return len(h.up.resizes()) == 1 })
					}
					_ = stdinW.Close()
				}
				var err error
				select {
				case err = <-done:
				case <-ctx.Done():
					t.Fatalf("the session did not end; relay log:\n%s", h.logs)
				}
				_ = stdinW.Close()
				res := h.wait(t, "s", rcTimeout)
				if !errors.Is(res.RecordingErr, tapErr) {
					t.Errorf("RecordingErr %v, want %v", res.RecordingErr, tapErr)
				}
				if tc.failOpen {
					if rcExitCode(err) != 3 || res.Err != nil || res.ExitCode != 3 {
						t.Errorf("client error %v, result %+v; want exit code 3 on both", err, res.RemoteCommandResult)
					}
					if out.String() != "hi" {
						t.Errorf("stdout %q, want %q", out.String(), "hi")
					}
				} else {
					if err == nil || !strings.Contains(err.Error(), ErrRecordingFailed.Error()) {
						t.Errorf("client error %v, want one that names the recording", err)
					}
					if !errors.Is(res.Err, ErrRecordingFailed) || !errors.Is(res.Err, tapErr) {
						t.Errorf("result error %v, want ErrRecordingFailed wrapping %v", res.Err, tapErr)
					}
					if tc.failOn == "output" && out.String() != "" {
						t.Errorf("stdout %q reached the client although its recording failed", out.String())
					}
					if tc.failOn == "errorOutput" && errOut.String() != "" {
						t.Errorf("stderr %q reached the client although its recording failed", errOut.String())
					}
				}
				if tap.concurrent.Load() {
					t.Log("the Tap's methods were called concurrently (stdout and stderr are copied by separate goroutines)")
				}
				h.finish(t, baseline)
			})
		}
	}
}

// TestRemoteCommandBadInputClientVanishes: the client drops its TCP
// connection while the command neither reads nor writes (the fake's
// "block"), so only the connection's end can end the session. It must end,
// and cancel the upstream.
func TestRemoteCommandBadInputClientVanishes(t *testing.T) {
	for _, websocket := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%t", websocket), func(t *testing.T) {
			baseline := rcGoroutines()
			h := newRCHarness(t, nil)
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			var conn net.Conn
			var spdyClient *rcSPDY
			if websocket {
				c, _, err := h.dialWS(ctx, rcAll.query("s", "block"), "v5.channel.k8s.io")
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := c.read(); err != nil { // the session is ready
					t.Fatal(err)
				}
				conn = c.conn.NetConn()
			} else {
				spdyClient = h.dialSPDY(ctx, t, rcAll.query("s", "block"))
				for _, st := range []string{"error", "stdin", "stdout", "stderr"} {
					spdyClient.open(t, st, true)
				}
				conn = spdyClient.raw
			}
			rcWaitFor(t, "the upstream command to start", rcTimeout, func() bool {
				return slices.ContainsFunc(slices.Collect(maps.Values(rcGoroutines())), func(g string) bool {
					return strings.Contains(g, "(*rcUpstream).ExecInContainer")
				})
			})
			_ = conn.Close()
			res, ok := h.waitFor("s", rcTimeout)
			if !ok {
				t.Fatalf("the session outlived its client by %s", rcTimeout)
			}
			if res.Err == nil {
				t.Errorf("result %+v, want an error", res.RemoteCommandResult)
			}
			if spdyClient != nil {
				// The test client's own spdystream may hold a frame for
				// a stream it never read; reset them to free it.
				spdyClient.close()
			}
			h.finish(t, baseline)
		})
	}
}

// TestRemoteCommandBadInputUpstreamVanishes: the upstream connection drops
// mid-session, before any exit status. The session must end, and report
// a failure to the client and in its result. Over SPDY client-go takes an
// error stream that ends without a status for success; the relay must not
// (ErrUpstreamNoStatus).
func TestRemoteCommandBadInputUpstreamVanishes(t *testing.T) {
	for _, websocket := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%t", websocket), func(t *testing.T) {
			baseline := rcGoroutines()
			h := newRCHarness(t, nil)
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- h.exec(ctx, websocket, rcExecPath, rcNoStdin.query("s", "block"),
					clientremotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
			}()
			rcWaitFor(t, "the upstream command to start", rcTimeout, func() bool {
				return slices.ContainsFunc(slices.Collect(maps.Values(rcGoroutines())), func(g string) bool {
					return strings.Contains(g, "(*rcUpstream).ExecInContainer")
				})
			})
			h.up.conns.closeAll()
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				t.Fatal("the session did not end when its upstream went away")
			}
			res := h.wait(t, "s", rcTimeout)
			if err == nil || !errors.Is(res.Err, ErrUpstreamNoStatus) || res.ExitCode != -1 {
				t.Errorf("the upstream connection dropped before any exit status; client error %v, result %+v, want %v",
					err, res.RemoteCommandResult, ErrUpstreamNoStatus)
			}
			h.finish(t, baseline)
		})
	}
}
