package upgrade

import (
	"errors"
	"testing"

	"github.com/gorilla/websocket"
)

var wsFrameCheckCases = []struct {
	name   string
	wire   []byte
	reject bool
}{
	{"empty", nil, false},
	{"one binary message", rcWSFrame(true, websocket.BinaryMessage, []byte{chanStdin, 'x'}, true), false},
	{"unmasked text message", rcWSFrame(true, websocket.TextMessage, []byte("0aGk="), false), false},
	{"16-bit length", rcWSFrame(true, websocket.BinaryMessage, make([]byte, 300), true), false},
	{"64-bit length", rcWSFrame(true, websocket.BinaryMessage, make([]byte, 70000), true), false},
	{"ping between messages", append(rcWSFrame(true, websocket.PingMessage, nil, true),
		rcWSFrame(true, websocket.BinaryMessage, []byte{chanStdin}, true)...), false},
	{"first fragment", rcWSFrame(false, websocket.BinaryMessage, []byte{chanStdin, 'h'}, true), true},
	{"continuation frame", append(rcWSFrame(true, websocket.BinaryMessage, []byte{chanStdin}, true),
		rcWSFrame(true, 0, []byte("i"), true)...), true},
	{"half a header", rcWSFrame(false, websocket.BinaryMessage, make([]byte, 300), true)[:3], false},
}

// wsCheckSplit feeds wire to one checker in pieces cut at cuts.
func wsCheckSplit(wire []byte, cuts []int) error {
	f := &wsFrameReader{}
	prev := 0
	for _, cut := range append(cuts, len(wire)) {
		cut = min(max(cut, prev), len(wire))
		if err := f.check(wire[prev:cut]); err != nil {
			return err
		}
		prev = cut
	}
	return nil
}

func TestWebSocketFrameCheck(t *testing.T) {
	for _, tc := range wsFrameCheckCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cuts := range [][]int{nil, {1}, {2, 3, 4}, {5, 9, 15, 300}} {
				err := wsCheckSplit(tc.wire, cuts)
				if (err != nil) != tc.reject || err != nil && !errors.Is(err, ErrWebSocketFragmented) {
					t.Errorf("cut at %v: %v, want rejected %t", cuts, err, tc.reject)
				}
			}
		})
	}
}

// FuzzWebSocketFrameCheck: however the bytes are cut into reads, the
// verdict is the same as for all of them at once.
func FuzzWebSocketFrameCheck(f *testing.F) {
	for _, tc := range wsFrameCheckCases {
		if len(tc.wire) < 4096 {
			f.Add(tc.wire, uint16(1), uint16(7))
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte, a, b uint16) {
		whole := wsCheckSplit(wire, nil)
		split := wsCheckSplit(wire, []int{int(a) % (len(wire) + 1), int(b) % (len(wire) + 1)})
		if (whole == nil) != (split == nil) {
			t.Fatalf("whole: %v, split at %d,%d: %v", whole, a, b, split)
		}
	})
}
