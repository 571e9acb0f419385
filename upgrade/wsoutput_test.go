package upgrade

import (
	"bytes"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// recordingConn is a net.Conn that keeps what is written to it.
type recordingConn struct {
	net.Conn // nil: only Write and SetDeadline are used
	mu       sync.Mutex
	buf      bytes.Buffer
	writes   int
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

// TestWSOutputKeepsFramesWhole has the WebSocket server's side write an
// accepted handshake, then frames of many sizes in pieces cut at random,
// while stdout messages go around it from another goroutine: the
// connection must carry the handshake, then every frame whole, the
// server's in their order.
func TestWSOutputKeepsFramesWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		c := &recordingConn{}
		o := &wsOutput{conn: c}
		handshake := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		// The handshake is out before any message, as Open returns after it.
		for rest := handshake; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(20))
			if _, err := o.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		var server [][]byte
		var wire []byte
		for i := range 30 {
			payload := bytes.Repeat([]byte{byte('a' + i%26)}, []int{0, 1, 125, 126, 300, 5000, 70000}[rng.IntN(7)])
			f := rcWSFrame(true, websocket.BinaryMessage, payload, false)
			server = append(server, f)
			wire = append(wire, f...)
		}
		var wg sync.WaitGroup
		writerRng := rand.New(rand.NewPCG(3, uint64(round)))
		wg.Go(func() {
			for i := range 50 {
				msg := bytes.Repeat([]byte{'0' + byte(i%10)}, 1+writerRng.IntN(40<<10))
				if _, err := o.writeMessage(chanStdout, msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
		for len(wire) > 0 {
			n := min(len(wire), 1+rng.IntN(6000))
			if _, err := o.Write(wire[:n]); err != nil {
				t.Fatal(err)
			}
			wire = wire[n:]
		}
		wg.Wait()
		got := c.buf.Bytes()
		if !bytes.HasPrefix(got, handshake) {
			t.Fatalf("round %d: the handshake does not come first", round)
		}
		got = got[len(handshake):]
		messages := 0
		for len(got) > 0 {
			size, ok := wsHeaderSize(got)
			if !ok || len(got) < size {
				t.Fatalf("round %d: a cut header", round)
			}
			n := size + int(wsPayloadLength(got[:size]))
			if n > len(got) {
				t.Fatalf("round %d: a cut frame", round)
			}
			frame := got[:n]
			got = got[n:]
			if len(server) > 0 && bytes.Equal(frame, server[0]) {
				server = server[1:]
				continue
			}
			p := frame[size:]
			if len(p) == 0 || p[0] != chanStdout || len(bytes.Trim(p[1:], string(p[len(p)-1:]))) != 0 {
				t.Fatalf("round %d: frame %q... is neither the server's next nor a stdout message", round, frame[:min(len(frame), 20)])
			}
			messages++
		}
		if len(server) > 0 || messages != 50 {
			t.Fatalf("round %d: %d server frames missing, %d stdout messages of 50", round, len(server), messages)
		}
	}
}

// TestWSOutputRefusedHandshake passes a refused handshake's response,
// body and all, as it is.
func TestWSOutputRefusedHandshake(t *testing.T) {
	c := &recordingConn{}
	o := &wsOutput{conn: c}
	resp := "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n\x82\x7fnot a frame: the body of a refusal"
	for i := range len(resp) {
		if _, err := o.Write([]byte(resp[i : i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if c.buf.String() != resp {
		t.Fatalf("wrote %q, want %q", c.buf.String(), resp)
	}
}

// BenchmarkWSOutputMessage writes 32 KiB stdout messages around the
// WebSocket server: one write to the connection each, and no allocation.
func BenchmarkWSOutputMessage(b *testing.B) {
	c := &discardConn{}
	o := &wsOutput{conn: c}
	msg := bytes.Repeat([]byte("y\n"), 16<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := o.writeMessage(chanStdout, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.writes)/float64(b.N), "writes/op")
}

type discardConn struct {
	net.Conn
	writes int
}

func (c *discardConn) Write(p []byte) (int, error) { c.writes++; return len(p), nil }
