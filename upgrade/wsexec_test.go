package upgrade

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/kubegate/kubegate/internal/testenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// rcWS is a hand-driven WebSocket exec client (gorilla/websocket): it
// speaks any channel protocol, binary or base64, and can write raw frames.
type rcWS struct {
	conn   *websocket.Conn
	base64 bool
}

// dialWS opens an exec WebSocket offering protocols (none: no
// Sec-WebSocket-Protocol header).
func (h *rcHarness) dialWS(ctx context.Context, query string, protocols ...string) (*rcWS, *http.Response, error) {
	pool := x509.NewCertPool()
	pool.AddCert(h.front.Certificate())
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, Subprotocols: protocols, HandshakeTimeout: rcTimeout}
	conn, resp, err := d.DialContext(ctx, "wss://"+h.front.Listener.Addr().String()+rcExecPath+"?"+query, nil)
	if err != nil {
		return nil, resp, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
		_ = conn.SetWriteDeadline(dl)
	}
	return &rcWS{conn: conn, base64: strings.Contains(conn.Subprotocol(), "base64")}, resp, nil
}

// send writes data on channel ch in the protocol's framing.
func (c *rcWS) send(ch byte, data []byte) error {
	if c.base64 {
		return c.conn.WriteMessage(websocket.TextMessage, []byte(string('0'+ch)+base64.StdEncoding.EncodeToString(data)))
	}
	return c.conn.WriteMessage(websocket.BinaryMessage, append([]byte{ch}, data...))
}

// read returns the next message as channel and data.
func (c *rcWS) read() (byte, []byte, error) {
	typ, msg, err := c.conn.ReadMessage()
	if err != nil {
		return 0, nil, err
	}
	if len(msg) == 0 {
		return 0, nil, errors.New("empty message")
	}
	if !c.base64 {
		if typ != websocket.BinaryMessage {
			return 0, nil, fmt.Errorf("message type %d on a binary protocol", typ)
		}
		return msg[0], msg[1:], nil
	}
	if typ != websocket.TextMessage {
		return 0, nil, fmt.Errorf("message type %d on a base64 protocol", typ)
	}
	data, err := base64.StdEncoding.DecodeString(string(msg[1:]))
	return msg[0] - '0', data, err
}

// readAll reads until the server closes the connection and returns each
// channel's data. A close, normal or not, ends it without error.
func (c *rcWS) readAll() (map[byte]string, error) {
	got := map[byte]string{}
	for {
		ch, data, err := c.read()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset") {
				return got, nil
			}
			return got, err
		}
		got[ch] += string(data)
	}
}

// rcWSFrame builds one WebSocket frame; a client's must be masked.
func rcWSFrame(fin bool, opcode byte, payload []byte, masked bool) []byte {
	b := opcode
	if fin {
		b |= 0x80
	}
	out := []byte{b}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// rcOversizedFrame is a masked binary frame header that declares 64 MiB,
// and a few bytes of the payload.
func rcOversizedFrame() []byte {
	raw := []byte{0x82, 0x80 | 127}
	raw = binary.BigEndian.AppendUint64(raw, 64<<20)
	return append(raw, 1, 2, 3, 4, chanStdin, 'x', 'y')
}

// TestWSExecLegacyProtocols drives every WebSocket channel protocol by
// hand: the first message announces the streams (empty, on stdout), stdout
// and stderr arrive on channels 1 and 2, and the error channel carries a
// JSON Status for v4 and v5, and plain text on failure only before v4.
func TestWSExecLegacyProtocols(t *testing.T) {
	baseline := rcGoroutines()
	h := newRCHarness(t, nil)
	for _, protocol := range []string{"", "channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io"} {
		for _, tc := range []struct {
			name     string
			command  []string
			exitCode int
			// status is the error channel's content before v4; from v4 on,
			// the Status's reason.
			status, reason string
		}{
			{"Exit3", []string{"hello"}, 3, "command terminated with exit code 3", serverremotecommand.NonZeroExitCodeReason},
			{"Exit0", []string{"hello", "0"}, 0, "", ""},
			{"InternalError", []string{"fail"}, -1, "error executing command in container", string(metav1.StatusReasonInternalError)},
		} {
			name := protocol
			if name == "" {
				name = "none"
			}
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
				defer cancel()
				var offer []string
				if protocol != "" {
					offer = []string{protocol}
				}
				c, _, err := h.dialWS(ctx, rcNoStdin.query("s", tc.command...), offer...)
				if err != nil {
					t.Fatal(err)
				}
				defer c.conn.Close()
				if got := c.conn.Subprotocol(); got != protocol {
					t.Errorf("negotiated %q, want %q", got, protocol)
				}
				ch, data, err := c.read()
				if err != nil || ch != chanStdout || len(data) != 0 {
					t.Fatalf("first message: channel %d, %q, %v; want an empty stdout message", ch, data, err)
				}
				got, err := c.readAll()
				if err != nil {
					t.Fatal(err)
				}
				if tc.exitCode != -1 && (got[chanStdout] != "hello\n" || got[chanStderr] != "err") {
					t.Errorf("stdout %q, stderr %q", got[chanStdout], got[chanStderr])
				}
				checkWSStatus(t, protocol, got[chanError], tc.exitCode, tc.status, tc.reason)
				res := h.wait(t, "s", rcTimeout)
				if res.Protocol != "websocket "+protocol {
					t.Errorf("result protocol %q", res.Protocol)
				}
				if res.ExitCode != tc.exitCode || (res.Err != nil) != (tc.exitCode == -1) {
					t.Errorf("result %+v, want exit code %d", res.RemoteCommandResult, tc.exitCode)
				}
			})
		}
	}
	h.finish(t, baseline)
}

// checkWSStatus checks the error channel's content for protocol.
func checkWSStatus(t *testing.T, protocol, got string, exitCode int, text, reason string) {
	t.Helper()
	if !strings.HasPrefix(protocol, "v4.") && !strings.HasPrefix(protocol, "v5.") {
		if !strings.Contains(got, text) || (text == "") != (got == "") {
			t.Errorf("error channel %q, want %q", got, text)
		}
		return
	}
	var st metav1.Status
	if err := json.Unmarshal([]byte(got), &st); err != nil {
		t.Fatalf("error channel %q is not a Status: %v", got, err)
	}
	switch {
	case exitCode == 0:
		if st.Status != metav1.StatusSuccess {
			t.Errorf("status %+v, want Success", st)
		}
	case st.Status != metav1.StatusFailure || string(st.Reason) != reason:
		t.Errorf("status %+v, want Failure with reason %s", st, reason)
	case exitCode > 0 && (st.Details == nil || len(st.Details.Causes) != 1 ||
		st.Details.Causes[0].Type != serverremotecommand.ExitCodeCauseType || st.Details.Causes[0].Message != fmt.Sprint(exitCode)):
		t.Errorf("status details %+v, want exit code %d", st.Details, exitCode)
	case exitCode < 0 && (st.Code != http.StatusInternalServerError || !strings.Contains(st.Message, text)):
		t.Errorf("status %+v, want code 500 and a message with %q", st, text)
	}
}

// TestWSExecBadHandshake: WebSocket upgrades the server must refuse with
// an HTTP error, without a panic, and with a failed result.
func TestWSExecBadHandshake(t *testing.T) {
	baseline := rcGoroutines()
	h := newRCHarness(t, nil)
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	with := func(k, v string) http.Header {
		hdr := upgrade.Clone()
		if v == "" {
			hdr.Del(k)
		} else {
			hdr.Set(k, v)
		}
		return hdr
	}
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"UnknownSubprotocol", with("Sec-Websocket-Protocol", "v9.channel.k8s.io"), http.StatusForbidden},
		{"UnknownSubprotocols", with("Sec-Websocket-Protocol", "v9.channel.k8s.io, SPDY/3.1+portforward.k8s.io"), http.StatusForbidden},
		{"BadVersion", with("Sec-Websocket-Version", "12"), http.StatusBadRequest},
		{"MissingKey", with("Sec-Websocket-Key", ""), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			c, resp, err := h.rawUpgrade(ctx, http.MethodGet, rcAll.query("s", "echo"), tc.header)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %s, want %d", resp.Status, tc.status)
			}
			res := h.wait(t, "s", rcTimeout)
			if res.panicked != nil || res.Err == nil || !strings.Contains(res.Err.Error(), "websocket handshake") {
				t.Errorf("result %+v, panic %v; want a handshake error", res.RemoteCommandResult, res.panicked)
			}
		})
	}
	t.Run("OneKnownSubprotocolAmongUnknown", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
		defer cancel()
		c, _, err := h.dialWS(ctx, rcNoStdin.query("s", "hello"), "v9.channel.k8s.io", "v4.channel.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.Close()
		if c.conn.Subprotocol() != "v4.channel.k8s.io" {
			t.Errorf("negotiated %q", c.conn.Subprotocol())
		}
		if _, err := c.readAll(); err != nil {
			t.Fatal(err)
		}
		if res := h.wait(t, "s", rcTimeout); res.ExitCode != 3 {
			t.Errorf("result %+v", res.RemoteCommandResult)
		}
	})
	h.finish(t, baseline)
}

// TestWSExecBadFrames sends bad or unexpected messages and frames on a v5
// exec (the fake's echo, stdin open). Input the channel protocol cannot
// take (a malformed close signal, an oversized or unmasked frame) closes
// the connection; input it can ignore is ignored, and the session then
// completes with the stdin that follows ("hi", then the close signal).
func TestWSExecBadFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		// msgs are sent as binary messages; raw is written on the wire.
		msgs [][]byte
		raw  []byte
		// closes: the server must close the connection.
		closes bool
		// noTail: do not send the usual stdin and close signal after.
		noTail     bool
		wantStdout string
		// memory: check the server did not allocate for the frame.
		memory bool
		// vanish: the client then drops the TCP connection, and the
		// session must end by itself.
		vanish bool
	}{
		{name: "EmptyMessage", msgs: [][]byte{{}}, wantStdout: "hi"},
		{name: "UnknownChannel", msgs: [][]byte{{9, 'x'}}, wantStdout: "hi"},
		{name: "WriteOnlyChannel", msgs: [][]byte{{chanStdout, 'x'}, {chanError, 'x'}}, wantStdout: "hi"},
		{name: "TextMessageOnBinaryProtocol", raw: rcWSFrame(true, websocket.TextMessage, []byte("0x"), true), wantStdout: "hi"},
		{name: "ResizeOnNonTTYSession", msgs: [][]byte{append([]byte{chanResize}, `{"Width":80,"Height":24}`...), append([]byte{chanResize}, "junk"...)}, wantStdout: "hi"},
		{name: "VanishAfterResizeOnNonTTYSession", msgs: [][]byte{append([]byte{chanResize}, `{"Width":80,"Height":24}`...), {chanStdin, 'x'}}, vanish: true},
		{name: "VanishMidSession", msgs: [][]byte{{chanStdin, 'x'}}, vanish: true},
		{name: "StdinAfterItsClose", msgs: [][]byte{{255, chanStdin}, {chanStdin, 'x'}}, noTail: true, wantStdout: ""},
		{name: "CloseSignalAlone", msgs: [][]byte{{255}}, closes: true},
		{name: "CloseSignalTwoChannels", msgs: [][]byte{{255, 0, 1}}, closes: true},
		{name: "CloseSignalUnknownChannel", msgs: [][]byte{{255, 9}}, closes: true},
		{name: "UnmaskedFrame", raw: rcWSFrame(true, websocket.BinaryMessage, []byte{chanStdin, 'x'}, false), closes: true},
		{name: "OversizedFrame64MiB", raw: rcOversizedFrame(), closes: true, memory: true},
		// x/net/websocket would return each continuation frame as a
		// message of its own, and wsstream take its first byte for a
		// channel: a fragmented message ends the session instead
		// (client-go never fragments).
		{name: "FragmentedMessage", raw: append(rcWSFrame(false, websocket.BinaryMessage, []byte{chanStdin, 'h'}, true),
			rcWSFrame(true, 0, []byte("i!"), true)...), closes: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := rcGoroutines()
			h := newRCHarness(t, nil)
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			c, _, err := h.dialWS(ctx, rcAll.query("s", "echo"), "v5.channel.k8s.io")
			if err != nil {
				t.Fatal(err)
			}
			defer c.conn.Close()
			if ch, _, err := c.read(); err != nil || ch != chanStdout {
				t.Fatalf("first message: channel %d, %v", ch, err)
			}
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			for _, m := range tc.msgs {
				if err := c.conn.WriteMessage(websocket.BinaryMessage, m); err != nil {
					t.Fatal(err)
				}
			}
			raw := tc.raw
			if raw != nil {
				if _, err := c.conn.NetConn().Write(raw); err != nil {
					t.Fatal(err)
				}
			}
			if tc.vanish {
				_ = c.conn.NetConn().Close()
				if res := h.wait(t, "s", rcTimeout); res.Err == nil {
					t.Errorf("result %+v after the client vanished, want an error", res.RemoteCommandResult)
				}
				h.finish(t, baseline)
				return
			}
			if !tc.closes && !tc.noTail {
				if err := c.send(chanStdin, []byte("hi")); err != nil {
					t.Fatal(err)
				}
				if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{255, chanStdin}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.noTail && raw != nil {
				_ = c.conn.WriteMessage(websocket.BinaryMessage, []byte{255, chanStdin})
			}
			got, err := c.readAll()
			if err != nil {
				t.Fatalf("the session did not end: %v (got %q); relay log:\n%s", err, got, h.logs)
			}
			if tc.memory {
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
					t.Errorf("%d MiB allocated for a frame that declared 64 MiB", alloc>>20)
				}
			}
			res := h.wait(t, "s", rcTimeout)
			if tc.closes {
				if got[chanError] != "" {
					t.Errorf("error channel %q after the server closed", got[chanError])
				}
				// The relay sees the client go: the session ends with the
				// error of its next write to the client, or with the
				// request's cancellation — unless the upstream command
				// finished first (its stdin ended with the connection), in
				// which case its exit status is the outcome. Either way the
				// session is over (h.wait returned) and nothing leaks
				// (h.finish below).
				if res.Err == nil && res.ExitCode < 0 {
					t.Errorf("result %+v after a protocol error, want an error or the command's exit status", res.RemoteCommandResult)
				}
			} else {
				if got[chanStdout] != tc.wantStdout {
					t.Errorf("stdout %q, want %q", got[chanStdout], tc.wantStdout)
				}
				checkWSStatus(t, "v5.channel.k8s.io", got[chanError], 3, "", serverremotecommand.NonZeroExitCodeReason)
				if res.Err != nil || res.ExitCode != 3 {
					t.Errorf("result %+v", res.RemoteCommandResult)
				}
			}
			h.finish(t, baseline)
		})
	}
}

// TestWSExecResize sends resize messages on a tty v5 exec (the fake's
// echo): valid sizes reach the upstream, in order, even split across
// messages or several in one. The first message that is not a JSON
// TerminalSize ends resizing for the session (later sizes are dropped);
// the session itself goes on and completes.
func TestWSExecResize(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []string
		want []serverremotecommand.TerminalSize
	}{
		{"One", []string{`{"Width":80,"Height":24}`}, []serverremotecommand.TerminalSize{{Width: 80, Height: 24}}},
		{"TwoInOneMessage", []string{`{"Width":80,"Height":24}{"Width":100,"Height":30}`},
			[]serverremotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 100, Height: 30}}},
		{"SplitAcrossMessages", []string{`{"Width":80,`, `"Height":24}`}, []serverremotecommand.TerminalSize{{Width: 80, Height: 24}}},
		{"UnknownFieldsAndCase", []string{`{"width":80,"height":24,"x":[1,2]}`}, []serverremotecommand.TerminalSize{{Width: 80, Height: 24}}},
		{"NotJSONFirst", []string{"not json", `{"Width":80,"Height":24}`}, nil},
		{"NotJSONBetween", []string{`{"Width":80,"Height":24}`, "]", `{"Width":100,"Height":30}`},
			[]serverremotecommand.TerminalSize{{Width: 80, Height: 24}}},
		{"WidthOverflow", []string{`{"Width":70000,"Height":24}`, `{"Width":80,"Height":24}`}, nil},
		{"NegativeHeight", []string{`{"Width":80,"Height":-1}`, `{"Width":80,"Height":24}`}, nil},
		{"WrongType", []string{`{"Width":"80","Height":24}`, `{"Width":80,"Height":24}`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := rcGoroutines()
			tap := &rcTap{}
			h := newRCHarness(t, func(c *RemoteCommandConfig) { c.Tap = tap })
			ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
			defer cancel()
			c, _, err := h.dialWS(ctx, rcTTY.query("s", "echo"), "v5.channel.k8s.io")
			if err != nil {
				t.Fatal(err)
			}
			defer c.conn.Close()
			for _, m := range tc.msgs {
				if err := c.send(chanResize, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			if len(tc.want) > 0 {
				rcWaitFor(t, "the resizes to reach the upstream", rcTimeout, func() bool { return len(h.up.resizes()) == len(tc.want) })
			}
			if err := c.send(chanStdin, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{255, chanStdin}); err != nil {
				t.Fatal(err)
			}
			got, err := c.readAll()
			if err != nil {
				t.Fatalf("the session did not end: %v; relay log:\n%s", err, h.logs)
			}
			if got[chanStdout] != "hi" {
				t.Errorf("stdout %q, want %q", got[chanStdout], "hi")
			}
			if res := h.wait(t, "s", rcTimeout); res.Err != nil || res.ExitCode != 3 {
				t.Errorf("result %+v", res.RemoteCommandResult)
			}
			if up := h.up.resizes(); !slices.Equal(up, tc.want) {
				t.Errorf("upstream got resizes %v, want %v", up, tc.want)
			}
			_, _, _, sizes := tap.recorded()
			if len(sizes) != len(tc.want) {
				t.Errorf("the tap saw resizes %v, want %v", sizes, tc.want)
			}
			h.finish(t, baseline)
		})
	}
}

// TestWSExecCluster runs the relay in front of a real kube-apiserver and
// test kubelet (upstream over WebSocket v5, no fallback): a normal exec,
// then the two inputs that used to wedge the WebSocket reader (a resize on
// a non-tty session; a resize that is not JSON, then a valid one, on a
// tty).
func TestWSExecCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	baseline := rcGoroutines()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	h := newRCHarness(t, func(c *RemoteCommandConfig) {
		// The container names the session toward the test only: the pod
		// has one container, which the apiserver picks.
		q := c.URL.Query()
		q.Del("container")
		u, _ := url.Parse(env.APIServerURL + c.URL.Path)
		u.RawQuery = q.Encode()
		c.Upstream, c.URL = rest.CopyConfig(env.RESTConfig), u
	})
	sh := func(script string) []string { return []string{"sh", "-c", script} }

	t.Run("ClientGoExec", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
		defer cancel()
		var out, errOut rcBuffer
		err := h.exec(ctx, true, rcExecPath, rcAll.query("s1", sh("cat; echo err >&2; exit 3")...),
			clientremotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errOut})
		if rcExitCode(err) != 3 || out.String() != "hello\n" || errOut.String() != "err\n" {
			t.Errorf("err %v, stdout %q, stderr %q", err, out.String(), errOut.String())
		}
		if res := h.wait(t, "s1", rcTimeout); res.Err != nil || res.ExitCode != 3 {
			t.Errorf("result %+v", res.RemoteCommandResult)
		}
	})
	t.Run("ResizeOnNonTTYSession", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
		defer cancel()
		c, _, err := h.dialWS(ctx, rcAll.query("s2", sh("cat")...), "v5.channel.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.Close()
		for _, m := range [][]byte{[]byte(`{"Width":80,"Height":24}`), []byte("hi\n")} {
			ch := byte(chanResize)
			if string(m) == "hi\n" {
				ch = chanStdin
			}
			if err := c.send(ch, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{255, chanStdin}); err != nil {
			t.Fatal(err)
		}
		got, err := c.readAll()
		if err != nil || got[chanStdout] != "hi\n" {
			t.Fatalf("stdout %q, %v; relay log:\n%s", got[chanStdout], err, h.logs)
		}
		if res := h.wait(t, "s2", rcTimeout); res.Err != nil || res.ExitCode != 0 {
			t.Errorf("result %+v", res.RemoteCommandResult)
		}
	})
	t.Run("BadResizeOnTTY", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
		defer cancel()
		c, _, err := h.dialWS(ctx, rcTTY.query("s3", sh("read line; echo got:$line")...), "v5.channel.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.Close()
		for _, m := range []string{"not json", `{"Width":80,"Height":24}`} {
			if err := c.send(chanResize, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.send(chanStdin, []byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		got, err := c.readAll()
		if err != nil || !strings.Contains(got[chanStdout], "got:hi") {
			t.Fatalf("stdout %q, %v; relay log:\n%s", got[chanStdout], err, h.logs)
		}
		if res := h.wait(t, "s3", rcTimeout); res.Err != nil || res.ExitCode != 0 {
			t.Errorf("result %+v", res.RemoteCommandResult)
		}
	})
	rcWaitFor(t, "the relay's handlers to return", rcTimeout, func() bool { return h.active.Load() == 0 })
	h.close()
	rcCheckNoLeaks(t, baseline)
}
