package upgrade

import (
	"errors"
	"testing"

	"github.com/gorilla/websocket"
)

// TestWebSocketFrameLimit: a frame over wsMaxFrame is refused from its
// header on, before its payload arrives; one at the limit passes.
func TestWebSocketFrameLimit(t *testing.T) {
	at := rcWSFrame(true, websocket.BinaryMessage, make([]byte, wsMaxFrame), true)
	over := rcWSFrame(true, websocket.BinaryMessage, make([]byte, wsMaxFrame+1), true)
	if err := wsCheckSplit(at, []int{3, 9}); err != nil {
		t.Errorf("a frame at the limit: %v", err)
	}
	for _, cuts := range [][]int{nil, {1}, {2, 3, 4}} {
		if err := wsCheckSplit(over[:14], cuts); !errors.Is(err, ErrWebSocketFrameTooLarge) {
			t.Errorf("the header of a frame over the limit, cut at %v: %v", cuts, err)
		}
	}
	// A never-ending frame: a 64-bit length of 2^63-1.
	huge := []byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
	if err := wsCheckSplit(huge, nil); !errors.Is(err, ErrWebSocketFrameTooLarge) {
		t.Errorf("a never-ending frame: %v", err)
	}
}

// TestConfiguredFrameLimits: MaxFrameBytes replaces the default limit of
// both readers.
func TestConfiguredFrameLimits(t *testing.T) {
	ws := &wsFrameReader{maxFrame: 100}
	if err := ws.check(rcWSFrame(true, websocket.BinaryMessage, make([]byte, 100), true)); err != nil {
		t.Errorf("a WebSocket frame at a limit of 100: %v", err)
	}
	if err := ws.check(rcWSFrame(true, websocket.BinaryMessage, make([]byte, 101), true)); !errors.Is(err, ErrWebSocketFrameTooLarge) {
		t.Errorf("a WebSocket frame over a limit of 100: %v", err)
	}
	sp := &spdyFrameReader{maxData: 100}
	if err := sp.check(spdyFrame(false, 100)); err != nil {
		t.Errorf("a SPDY data frame at a limit of 100: %v", err)
	}
	if err := sp.check(spdyFrame(false, 101)); !errors.Is(err, ErrSPDYFrameTooLarge) {
		t.Errorf("a SPDY data frame over a limit of 100: %v", err)
	}
}
