package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/spdystream/spdy"
)

// spdyWire encodes frames as a client's framer does, header blocks
// compressed on one zlib stream.
func spdyWire(tb testing.TB, frames ...spdy.Frame) []byte {
	tb.Helper()
	var buf bytes.Buffer
	fr, err := spdy.NewFramer(&buf, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range frames {
		if err := fr.WriteFrame(f); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// spdyStreamHeaders are the headers client-go sends on a new stream.
func spdyStreamHeaders(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// spdyFrameSeeds are whole client byte streams: what kubectl sends for an
// exec and a port-forward, every control frame type, and header blocks
// that inflate past kubegate's limits (zlib bombs).
func spdyFrameSeeds(tb testing.TB) map[string][]byte {
	syn := func(id spdy.StreamId, h http.Header) *spdy.SynStreamFrame {
		return &spdy.SynStreamFrame{StreamId: id, Headers: h}
	}
	manyHeaders := http.Header{}
	for i := range spdyMaxHeaderCount + 1 {
		manyHeaders.Add(fmt.Sprintf("h%d", i), "v")
	}
	return map[string][]byte{
		"exec": spdyWire(tb,
			syn(1, spdyStreamHeaders("streamtype", "error")),
			syn(3, spdyStreamHeaders("streamtype", "stdin")),
			syn(5, spdyStreamHeaders("streamtype", "stdout")),
			syn(7, spdyStreamHeaders("streamtype", "resize")),
			&spdy.DataFrame{StreamId: 3, Data: []byte("ls\n")},
			&spdy.DataFrame{StreamId: 7, Data: []byte(`{"Width":80,"Height":24}`)},
			&spdy.DataFrame{StreamId: 3, Flags: spdy.DataFlagFin},
			&spdy.PingFrame{Id: 1},
			&spdy.RstStreamFrame{StreamId: 5, Status: spdy.Cancel},
			&spdy.GoAwayFrame{LastGoodStreamId: 7, Status: spdy.GoAwayOK}),
		"port-forward": spdyWire(tb,
			syn(1, spdyStreamHeaders("streamtype", "error", "port", "8080", "requestid", "0")),
			syn(3, spdyStreamHeaders("streamtype", "data", "port", "8080", "requestid", "0")),
			&spdy.DataFrame{StreamId: 3, Data: []byte("GET / HTTP/1.0\r\n\r\n")},
			&spdy.HeadersFrame{StreamId: 3, Headers: spdyStreamHeaders("x", "y")},
			&spdy.SynReplyFrame{StreamId: 2, Headers: spdyStreamHeaders("a", "b\x00c")},
			&spdy.SettingsFrame{FlagIdValues: []spdy.SettingsFlagIdValue{{Id: spdy.SettingsInitialWindowSize, Value: 1 << 16}}},
			&spdy.WindowUpdateFrame{StreamId: 3, DeltaWindowSize: 1024}),
		"field bomb":   spdyWire(tb, syn(1, spdyStreamHeaders("streamtype", strings.Repeat("a", 4<<20)))),
		"name bomb":    spdyWire(tb, syn(1, spdyStreamHeaders(strings.Repeat("n", spdyMaxHeaderField+1), "v"))),
		"count bomb":   spdyWire(tb, syn(1, manyHeaders)),
		"bomb at last": spdyWire(tb, syn(1, spdyStreamHeaders("streamtype", "error")), syn(3, spdyStreamHeaders("v", strings.Repeat("\x00", 1<<20)))),
		"large data":   spdyWire(tb, &spdy.DataFrame{StreamId: 1, Data: make([]byte, spdyMaxDataFrame+1)})[:64],
	}
}

// spdyReadLimit bounds what reading one frame may allocate: the largest
// data frame kubegate takes, every header of a block at its limit (names
// and values, kept twice: read, then split), and the decompressor's state.
const spdyReadLimit = spdyMaxDataFrame + 2*spdyMaxHeaderCount*2*(spdyMaxHeaderField+64) + 1<<20

// FuzzSPDYFrames reads any client byte stream as kubegate's SPDY server
// does: through spdyFrameReader into spdystream's framer with kubegate's
// limits. Every frame it returns is within the limits (data frames,
// header counts and sizes after zlib decompression); a header block that
// inflates past them is an error, and no frame's read allocates more than
// spdyReadLimit, whatever the compression ratio.
func FuzzSPDYFrames(f *testing.F) {
	for _, wire := range spdyFrameSeeds(f) {
		if len(wire) < 64<<10 {
			f.Add(wire)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		fr, err := spdy.NewFramerWithOptions(io.Discard, &spdyFrameReader{r: bytes.NewReader(wire)}, spdyFramerOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		for range 1000 {
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			frame, err := fr.ReadFrame()
			runtime.ReadMemStats(&ms)
			if grew := ms.TotalAlloc - before; grew > spdyReadLimit {
				t.Fatalf("reading one frame allocated %d bytes, limit %d", grew, spdyReadLimit)
			}
			if err != nil {
				return
			}
			var h http.Header
			switch fm := frame.(type) {
			case *spdy.DataFrame:
				if len(fm.Data) > spdyMaxDataFrame {
					t.Fatalf("data frame of %d bytes", len(fm.Data))
				}
			case *spdy.SynStreamFrame:
				h = fm.Headers
			case *spdy.SynReplyFrame:
				h = fm.Headers
			case *spdy.HeadersFrame:
				h = fm.Headers
			}
			spdyCheckHeaders(t, h)
		}
	})
}

func spdyCheckHeaders(t *testing.T, h http.Header) {
	t.Helper()
	if len(h) > spdyMaxHeaderCount {
		t.Fatalf("%d headers", len(h))
	}
	for name, vs := range h {
		n := 0
		for _, v := range vs {
			n += len(v) + 1
		}
		if len(name) > spdyMaxHeaderField || n-1 > spdyMaxHeaderField {
			t.Fatalf("header %.40q of %d bytes, value %d", name, len(name), n-1)
		}
	}
}

// TestSPDYHeaderBombs checks the seeds' verdicts: kubectl's streams are
// read whole, every bomb is refused.
func TestSPDYHeaderBombs(t *testing.T) {
	for name, wire := range spdyFrameSeeds(t) {
		t.Run(name, func(t *testing.T) {
			fr, err := spdy.NewFramerWithOptions(io.Discard, &spdyFrameReader{r: bytes.NewReader(wire)}, spdyFramerOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			var frames int
			for {
				_, err = fr.ReadFrame()
				if err != nil {
					break
				}
				frames++
			}
			clean := errors.Is(err, io.EOF)
			switch name {
			case "exec", "port-forward":
				if !clean {
					t.Errorf("after %d frames: %v", frames, err)
				}
			case "bomb at last":
				if clean || frames != 1 {
					t.Errorf("%d frames, then %v; want 1 and a refusal", frames, err)
				}
			default:
				if clean || frames != 0 {
					t.Errorf("%d frames, then %v; want a refusal", frames, err)
				}
			}
		})
	}
}

// FuzzSPDYHeaderRoundTrip writes a SYN_STREAM with any headers as a
// client's framer does and reads it back through kubegate's limits: a
// block within the limits comes back as it was sent, one over them is
// refused.
func FuzzSPDYHeaderRoundTrip(f *testing.F) {
	f.Add("streamtype", "error", uint8(1), uint16(0))
	f.Add("port", "8080", uint8(2), uint16(0))
	f.Add("requestid", "0", uint8(3), uint16(8<<10))
	f.Add("x", "", uint8(40), uint16(10))
	f.Fuzz(func(t *testing.T, name, value string, count uint8, pad uint16) {
		name = strings.ToLower(name)
		if name == "" || strings.Contains(value, "\x00") {
			return // a name must not be empty; NUL separates values
		}
		h := http.Header{}
		for i := range int(count) {
			h[fmt.Sprintf("%s%d", name, i)] = []string{value + strings.Repeat("p", int(pad))}
		}
		if len(h) == 0 {
			h[name] = []string{value}
		}
		wire := spdyWire(t, &spdy.SynStreamFrame{StreamId: 1, Headers: h})
		fr, err := spdy.NewFramerWithOptions(io.Discard, &spdyFrameReader{r: bytes.NewReader(wire)}, spdyFramerOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		over := len(h) > spdyMaxHeaderCount || len(wire) > 8+spdyMaxControlFrame
		for k, vs := range h {
			over = over || len(k) > spdyMaxHeaderField || len(vs[0]) > spdyMaxHeaderField
		}
		frame, err := fr.ReadFrame()
		if over {
			if err == nil {
				t.Fatalf("%d headers, value of %d bytes: read, want refused", len(h), len(value)+int(pad))
			}
			return
		}
		if err != nil {
			t.Fatalf("%d headers within the limits: %v", len(h), err)
		}
		got := frame.(*spdy.SynStreamFrame).Headers
		if len(got) != len(h) {
			t.Fatalf("%d headers back, sent %d", len(got), len(h))
		}
		for k, vs := range h {
			if g := got.Values(k); len(g) != 1 || g[0] != vs[0] { // the reader canonicalizes names
				t.Fatalf("header %q: %q back, sent %q", k, g, vs)
			}
		}
	})
}
