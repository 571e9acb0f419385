package upgrade

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	serverremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// wsChannelProtocols are the subprotocols newWSChannelConn serves, in the
// order FuzzWebSocketChannels picks them by index.
var wsChannelProtocols = []string{wsProtocolV5, wsProtocolV4, wsProtocolV4Base64, wsProtocolV1, wsProtocolV1Base64}

// wsMessages splits b into at most wsMaxMessages messages: a length
// byte, then that many bytes. (The bound keeps a session, and so the
// fuzzer's minimizing, quick.)
func wsMessages(b []byte) [][]byte {
	var msgs [][]byte
	for len(b) > 0 && len(msgs) < wsMaxMessages {
		n := min(int(b[0]), len(b)-1)
		msgs = append(msgs, b[1:1+n])
		b = b[1+n:]
	}
	return msgs
}

const wsMaxMessages = 32

// wsEncodeMessages is wsMessages's inverse, for seeds.
func wsEncodeMessages(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(append(b, byte(len(m))), m...)
	}
	return b
}

// wsStdinModel is what the stdin channel should deliver from msgs, from
// the protocol's description (kube-streaming-protocols.md): a message's
// first byte is its channel (an ASCII digit in the base64 protocols, whose
// payload is then base64); v5's 0xff names a channel to close; a message
// for another channel, or one that cannot be decoded, is dropped.
func wsStdinModel(protocol string, msgs [][]byte) []byte {
	var out []byte
	closed := false
	b64 := strings.Contains(protocol, "base64")
	for _, m := range msgs {
		if len(m) == 0 {
			continue
		}
		if protocol == wsProtocolV5 && m[0] == 0xff {
			if len(m) != 2 || m[1] > chanResize {
				return out // a protocol error ends the connection
			}
			closed = closed || m[1] == chanStdin
			continue
		}
		ch, payload := m[0], m[1:]
		if b64 {
			ch -= '0'
		}
		if ch != chanStdin || closed {
			continue
		}
		if b64 {
			dec, err := base64.StdEncoding.DecodeString(string(payload))
			if err != nil {
				continue
			}
			payload = dec
		}
		out = append(out, payload...)
	}
	return out
}

// wsChannelResult is what the server side of one fuzzed session read.
type wsChannelResult struct {
	protocol string
	stdin    []byte
	err      error
}

// FuzzWebSocketChannels sends any sequence of messages over any channel
// protocol to kubegate's WebSocket channel framing (newWSChannelConn
// behind wsCheckingWriter, as serveWebSocket has it) and checks that stdin
// receives exactly the bytes wsStdinModel derives from the protocol's
// description: nothing from another channel, a resize or a bad base64
// message, nothing after v5 closed stdin, and the session's end reaches
// stdin and the resize reader (neither blocks).
func FuzzWebSocketChannels(f *testing.F) {
	f.Add(wsEncodeMessages("\x00ls\n", "\x04{\"Width\":80,\"Height\":24}", "\x00exit\n"), uint8(0), true)
	f.Add(wsEncodeMessages("\x00ab", "\xff\x00", "\x00cd"), uint8(0), false)
	f.Add(wsEncodeMessages("\xff\x07", "\x00x"), uint8(0), false)
	f.Add(wsEncodeMessages("\xff", "\x00x"), uint8(0), true)
	f.Add(wsEncodeMessages("0bHMK", "4eyJXaWR0aCI6ODAsIkhlaWdodCI6MjR9", "0!!", "1aGk=", "0ZXhpdAo="), uint8(2), true)
	f.Add(wsEncodeMessages("\x01out", "\x02err", "\x03status", "\x09nine", "", "\x00in"), uint8(1), false)
	f.Add(wsEncodeMessages("0aGk=", "\xff0"), uint8(4), false)
	f.Add(wsEncodeMessages("\x00v1", "\x04junk", "\x04{\"Width\":1,\"Height\":2}"), uint8(3), true)

	results := make(chan wsChannelResult, 1)
	var tty bool // set by each run before it dials; runs are sequential
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		opts := &serverremotecommand.Options{Stdin: true, Stdout: true, Stderr: !tty, TTY: tty}
		conn := newWSChannelConn(opts)
		protocol, streams, err := conn.Open(wsCheckingWriter{ResponseWriter: w}, req)
		if err != nil {
			results <- wsChannelResult{err: err}
			return
		}
		defer conn.Close()
		resizes := make(chan serverremotecommand.TerminalSize)
		resizeDone := make(chan struct{})
		if tty {
			go func() {
				defer close(resizeDone)
				readResizes(req.Context(), streams[chanResize], resizes)
			}()
			go func() {
				for range resizes {
				}
			}()
		} else {
			close(resizeDone)
		}
		stdin, err := io.ReadAll(streams[chanStdin])
		<-resizeDone
		results <- wsChannelResult{protocol: protocol, stdin: stdin, err: err}
	}))
	f.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	f.Fuzz(func(t *testing.T, data []byte, proto uint8, withTTY bool) {
		tty = withTTY
		protocol := wsChannelProtocols[int(proto)%len(wsChannelProtocols)]
		// One frame per message, however long: kubegate refuses fragments.
		d := websocket.Dialer{Subprotocols: []string{protocol}, WriteBufferSize: 1 << 20}
		ws, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		msgs := wsMessages(data)
		text := strings.Contains(protocol, "base64")
		for _, m := range msgs {
			typ := websocket.BinaryMessage
			if text {
				typ = websocket.TextMessage
			}
			if err := ws.WriteMessage(typ, m); err != nil {
				break // the server ended the session (a v5 protocol error)
			}
		}
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
		var res wsChannelResult
		select {
		case res = <-results:
		case <-time.After(30 * time.Second):
			t.Fatal("the server side did not see the session end")
		}
		_ = ws.Close()
		if res.err != nil && !errors.Is(res.err, io.ErrClosedPipe) {
			t.Fatalf("server: %v", res.err)
		}
		if res.protocol != protocol {
			t.Fatalf("protocol %q, want %q", res.protocol, protocol)
		}
		if want := wsStdinModel(protocol, msgs); !bytes.Equal(res.stdin, want) {
			t.Fatalf("%s: stdin got %q, want %q", protocol, res.stdin, want)
		}
	})
}
