package upgrade

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	streamhttp "k8s.io/streaming/pkg/httpstream"
	utilexec "k8s.io/utils/exec"
)

// TestWSExecutorUpstreamBadInput has a fake apiserver answer kubegate's
// upstream WebSocket client with each case's messages, then close. The
// client must report exactly the outcome: output relayed, the exit status
// decoded, and anything malformed an error, never a clean exit.
func TestWSExecutorUpstreamBadInput(t *testing.T) {
	status := func(s string) []byte { return append([]byte{chanError}, s...) }
	exit7 := status(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NonZeroExitCode","message":"command terminated with non-zero exit code: error executing command [sh], exit code 7","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}`)
	success := status(`{"kind":"Status","apiVersion":"v1","status":"Success"}`)
	cases := []struct {
		name     string
		msgs     [][]byte
		text     bool   // send the first message as a text message
		out      string // stdout relayed
		exitCode int    // -1: an error that is not an exit code; 0: nil
		errLike  string
	}{
		{"success", [][]byte{{chanStdout}, append([]byte{chanStdout}, "hi\n"...), success}, false, "hi\n", 0, ""},
		{"exit code", [][]byte{append([]byte{chanStdout}, "x"...), exit7}, false, "x", 7, ""},
		{"status in two messages", [][]byte{exit7[:40], append([]byte{chanError}, exit7[40:]...)}, false, "", 7, ""},
		{"no status", [][]byte{append([]byte{chanStdout}, "cut"...)}, false, "cut", -1, ErrUpstreamNoStatus.Error()},
		{"status not JSON", [][]byte{status("{")}, false, "", -1, "does not decode"},
		{"status too large", [][]byte{status(strings.Repeat(" ", maxUpstreamStatus+1))}, false, "", -1, "over"},
		{"unknown channel", [][]byte{{9, 'x'}, success}, false, "", -1, "channel 9"},
		{"stderr not asked for", [][]byte{{chanStderr, 'x'}, success}, false, "", -1, "did not ask for"},
		{"text message", [][]byte{append([]byte{chanStdout}, "x"...), success}, true, "", -1, "not binary"},
		{"failure without exit code", [][]byte{status(`{"status":"Failure","reason":"InternalError","message":"no such container"}`)}, false, "", -1, "no such container"},
		{"exit code not a number", [][]byte{status(`{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}`)}, false, "", -1, "not a number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := wsFakeUpstream(t, func(conn *websocket.Conn) {
				for i, m := range c.msgs {
					typ := websocket.BinaryMessage
					if c.text && i == 0 {
						typ = websocket.TextMessage
					}
					if err := conn.WriteMessage(typ, m); err != nil {
						return
					}
				}
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			})
			var out bytes.Buffer
			err := runWSExecutor(t, srv, clientremotecommand.StreamOptions{Stdout: &out})
			if out.String() != c.out {
				t.Errorf("stdout %q, want %q", out.String(), c.out)
			}
			var exitErr utilexec.ExitError
			switch {
			case c.exitCode == 0:
				if err != nil {
					t.Fatalf("err %v, want a clean exit", err)
				}
			case c.exitCode > 0:
				if !errors.As(err, &exitErr) || exitErr.ExitStatus() != c.exitCode {
					t.Fatalf("err %v, want exit code %d", err, c.exitCode)
				}
			default:
				if err == nil || errors.As(err, &exitErr) || !strings.Contains(err.Error(), c.errLike) {
					t.Fatalf("err %v, want an error like %q", err, c.errLike)
				}
				// What breaks the protocol says so; the rest is not.
				broken := !strings.Contains(c.errLike, ErrUpstreamNoStatus.Error()) && c.name != "failure without exit code"
				if errors.Is(err, errUpstreamProtocol) != broken {
					t.Errorf("err %v: errUpstreamProtocol %v, want %v", err, !broken, broken)
				}
			}
		})
	}
}

// TestWSExecutorRefusedUpgradeFallsBack checks that a refused WebSocket
// upgrade is an upgrade failure, which makes the executor try SPDY.
func TestWSExecutorRefusedUpgradeFallsBack(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no WebSocket here", http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	err := runWSExecutor(t, srv, clientremotecommand.StreamOptions{Stdout: &bytes.Buffer{}})
	if !streamhttp.IsUpgradeFailure(err) {
		t.Fatalf("err %v, want an upgrade failure", err)
	}
}

// TestWSExecutorSendsStdinAndClose checks what kubegate sends upstream:
// stdin on channel 0, the v5 close signal at its end, a resize on channel
// 4 (a ping among them would fail the test).
func TestWSExecutorSendsStdinAndClose(t *testing.T) {
	got := make(chan []string, 1)
	srv := wsFakeUpstream(t, func(conn *websocket.Conn) {
		var seen []string
		conn.SetPingHandler(func(string) error { seen = append(seen, "ping"); return nil })
		for len(seen) < 3 {
			_, m, err := conn.ReadMessage()
			if err != nil {
				break
			}
			seen = append(seen, string(m))
		}
		got <- seen
		_ = conn.WriteMessage(websocket.BinaryMessage, append([]byte{chanError}, `{"status":"Success"}`...))
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	})
	opts := clientremotecommand.StreamOptions{
		Stdin: strings.NewReader("typed"), Stdout: &bytes.Buffer{}, Tty: true,
		TerminalSizeQueue: &rcSizeQueue{sizes: []clientremotecommand.TerminalSize{{Width: 100, Height: 30}}},
	}
	if err := runWSExecutor(t, srv, opts); err != nil {
		t.Fatal(err)
	}
	seen := <-got
	want := map[string]bool{"\x00typed": true, "\xff\x00": true, "\x04" + `{"Width":100,"Height":30}`: true}
	for _, m := range seen {
		if !want[m] {
			t.Errorf("upstream got %q, not one of %q", m, seen)
		}
		delete(want, m)
	}
	if len(want) != 0 {
		t.Errorf("upstream never got %v (got %q)", want, seen)
	}
}

// wsFakeUpstream is a TLS server that upgrades to v5.channel.k8s.io and
// hands the connection to serve.
func wsFakeUpstream(t testing.TB, serve func(*websocket.Conn)) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{wsProtocolV5}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		serve(conn)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// runWSExecutor runs kubegate's upstream WebSocket client against srv.
func runWSExecutor(t testing.TB, srv *httptest.Server, opts clientremotecommand.StreamOptions) error {
	t.Helper()
	u, _ := url.Parse(srv.URL + "/api/v1/namespaces/dev/pods/p/exec?command=sh&stdout=true")
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: rcCAPEM(srv)}}
	e, err := newWSExecutor(cfg, u, &upstreamStatus{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
	defer cancel()
	return e.StreamWithContext(ctx, opts)
}

// TestWSExecutorPassesWholeMessages has the fake apiserver send stdout in
// messages of several sizes, one split over frames: each reaches stdout in
// as few writes as the copy buffer allows (its 32 KiB), not one per read
// of the connection.
func TestWSExecutorPassesWholeMessages(t *testing.T) {
	msg := func(n int) []byte { return append([]byte{chanStdout}, bytes.Repeat([]byte("y\n"), n/2)...) }
	success := append([]byte{chanError}, `{"kind":"Status","apiVersion":"v1","status":"Success"}`...)
	srv := wsFakeUpstream(t, func(conn *websocket.Conn) {
		for _, m := range [][]byte{msg(100), msg(32 << 10), msg(40 << 10)} {
			if err := conn.WriteMessage(websocket.BinaryMessage, m); err != nil {
				return
			}
		}
		// One message in three frames.
		w, err := conn.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return
		}
		for _, part := range [][]byte{{chanStdout}, bytes.Repeat([]byte("y\n"), 5<<10), bytes.Repeat([]byte("y\n"), 5<<10)} {
			if _, err := w.Write(part); err != nil {
				return
			}
			if f, ok := w.(interface{ Flush() error }); ok {
				_ = f.Flush()
			}
		}
		if w.Close() != nil || conn.WriteMessage(websocket.BinaryMessage, success) != nil {
			return
		}
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	})
	var out writeSizes
	if err := runWSExecutor(t, srv, clientremotecommand.StreamOptions{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	want := []int{100, 32 << 10, 32 << 10, 8 << 10, 20 << 10}
	if !slices.Equal(out.sizes, want) {
		t.Errorf("stdout written in pieces of %v bytes, want %v", out.sizes, want)
	}
}

// writeSizes notes the size of each write.
type writeSizes struct{ sizes []int }

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

// BenchmarkWSExecutorReceive streams stdout from a fake apiserver over TLS
// in 32 KiB messages, as a kubelet relays a busy process's output, through
// kubegate's upstream WebSocket client into a discarding writer.
func BenchmarkWSExecutorReceive(b *testing.B) {
	const total = 64 << 20
	m := append([]byte{chanStdout}, bytes.Repeat([]byte("y\n"), 16<<10)...)
	success := append([]byte{chanError}, `{"kind":"Status","apiVersion":"v1","status":"Success"}`...)
	srv := wsFakeUpstream(b, func(conn *websocket.Conn) {
		for range total / (len(m) - 1) {
			if conn.WriteMessage(websocket.BinaryMessage, m) != nil {
				return
			}
		}
		_ = conn.WriteMessage(websocket.BinaryMessage, success)
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	})
	b.ReportAllocs()
	b.SetBytes(total)
	for b.Loop() {
		var out writeSizes
		if err := runWSExecutor(b, srv, clientremotecommand.StreamOptions{Stdout: &out}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(out.sizes)), "writes/op")
	}
}
