package upgrade

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/moby/spdystream/spdy"
)

// writeLog keeps each Write it gets.
type writeLog struct{ writes [][]byte }

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

// spdyWriterFrames is what kubegate's side of an exec sends: replies, data
// of every size class, an empty FIN, resets, settings, a ping and GOAWAY.
func spdyWriterFrames() []spdy.Frame {
	return []spdy.Frame{
		&spdy.SynReplyFrame{StreamId: 1, Headers: http.Header{}},
		&spdy.SynReplyFrame{StreamId: 3, Headers: http.Header{"A": {"b"}}},
		&spdy.DataFrame{StreamId: 3, Data: []byte("hello\n")},
		&spdy.DataFrame{StreamId: 3, Data: bytes.Repeat([]byte{'x'}, spdyGatherMax-8)}, // the largest gathered
		&spdy.DataFrame{StreamId: 3, Data: bytes.Repeat([]byte{'y'}, spdyGatherMax)},   // passes through
		&spdy.DataFrame{StreamId: 3, Flags: spdy.DataFlagFin},
		&spdy.SettingsFrame{FlagIdValues: []spdy.SettingsFlagIdValue{{Id: spdy.SettingsInitialWindowSize, Value: 1 << 16}}},
		&spdy.PingFrame{Id: 2},
		&spdy.RstStreamFrame{StreamId: 1, Status: spdy.Cancel},
		&spdy.GoAwayFrame{LastGoodStreamId: 3, Status: spdy.GoAwayOK},
	}
}

// TestSPDYFrameWriterWritesWholeFrames checks that each frame reaches the
// connection in one write (a frame too large to gather in two: header,
// payload), and that the bytes are exactly what spdystream's framer
// writes unbuffered.
func TestSPDYFrameWriterWritesWholeFrames(t *testing.T) {
	var want bytes.Buffer
	direct, err := spdy.NewFramer(&want, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &writeLog{}
	gathered, err := spdy.NewFramer(&spdyFrameWriter{w: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	frames := spdyWriterFrames()
	for _, fr := range frames {
		if err := direct.WriteFrame(fr); err != nil {
			t.Fatal(err)
		}
		if err := gathered.WriteFrame(fr); err != nil {
			t.Fatal(err)
		}
	}
	if got := bytes.Join(log.writes, nil); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("gathered frames differ from the framer's own: %d bytes, want %d", len(got), want.Len())
	}
	// The passed-through frame is the fifth: its header and payload come
	// as two writes.
	if len(log.writes) != len(frames)+1 {
		t.Fatalf("%d writes for %d frames, want %d", len(log.writes), len(frames), len(frames)+1)
	}
	for i, w := range log.writes {
		switch {
		case i == 4:
			if len(w) != 8 {
				t.Errorf("write %d: %d bytes, want the passed-through frame's 8-byte header", i, len(w))
			}
		case i == 5:
			if len(w) != spdyGatherMax {
				t.Errorf("write %d: %d bytes, want the passed-through payload", i, len(w))
			}
		default:
			if n := 8 + (int(w[5])<<16 | int(w[6])<<8 | int(w[7])); len(w) != n {
				t.Errorf("write %d: %d bytes, want one whole frame of %d", i, len(w), n)
			}
		}
	}
}

// failAfter fails every write after the first n.
type failAfter struct{ n int }

func (w *failAfter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("connection reset")
	}
	w.n--
	return len(p), nil
}

// TestSPDYFrameWriterFailsAfterAnError checks that a failed write fails
// every later one: the frame stream is broken.
func TestSPDYFrameWriterFailsAfterAnError(t *testing.T) {
	fw := &spdyFrameWriter{w: &failAfter{n: 1}}
	fr, _ := spdy.NewFramer(fw, nil)
	if err := fr.WriteFrame(&spdy.PingFrame{Id: 2}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteFrame(&spdy.PingFrame{Id: 4}); err == nil {
		t.Fatal("a failed write was not reported")
	}
	if _, err := fw.Write([]byte{0}); err == nil {
		t.Fatal("a write after a failure succeeded")
	}
}

// BenchmarkSPDYFrameWriter writes what an `exec -- true` session sends its
// client (replies, the exit status, resets, GOAWAY) through the writer;
// writes/op is what reaches the connection, each a TLS record and a
// system call.
func BenchmarkSPDYFrameWriter(b *testing.B) {
	status := []byte(`{"metadata":{},"status":"Success"}`)
	frames := []spdy.Frame{
		&spdy.SynReplyFrame{StreamId: 1, Headers: http.Header{}},
		&spdy.SynReplyFrame{StreamId: 3, Headers: http.Header{}},
		&spdy.DataFrame{StreamId: 1, Data: status},
		&spdy.RstStreamFrame{StreamId: 1, Status: spdy.Cancel},
		&spdy.RstStreamFrame{StreamId: 3, Status: spdy.Cancel},
		&spdy.GoAwayFrame{LastGoodStreamId: 3, Status: spdy.GoAwayOK},
	}
	for _, bc := range []struct {
		name   string
		gather bool
	}{{"direct", false}, {"gathered", true}} {
		b.Run(bc.name, func(b *testing.B) {
			cw := &countingWriter{}
			var w io.Writer = cw
			if bc.gather {
				w = &spdyFrameWriter{w: cw}
			}
			fr, err := spdy.NewFramer(w, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, f := range frames {
					if err := fr.WriteFrame(f); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(cw.writes)/float64(b.N), "writes/op")
		})
	}
}

// countingWriter counts writes and discards them.
type countingWriter struct{ writes int }

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return len(p), nil }
