package upgrade

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// pftCaptureCases are encoded records and what decoding them gives; they
// seed FuzzParsePortForwardCaptureRecord.
var pftCaptureCases = []struct {
	name    string
	in      []byte
	want    PortForwardCaptureRecord
	n       int
	wantErr bool
}{
	{"Empty", nil, PortForwardCaptureRecord{}, 0, false},
	{"DirectionOnly", []byte(">"), PortForwardCaptureRecord{}, 0, false},
	{"PartialHeader", []byte("<\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00"), PortForwardCaptureRecord{}, 0, false},
	{"PartialPayload", []byte(">\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05abc"), PortForwardCaptureRecord{}, 0, false},
	{"ToPod", []byte(">\x00\x00\x00\x00\x00\x00\x03\xe8\x00\x00\x00\x05hello"), PortForwardCaptureRecord{ToPod: true, Offset: time.Microsecond, Data: []byte("hello")}, 18, false},
	{"FromPodThenMore", []byte("<\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x02hi>"), PortForwardCaptureRecord{Offset: 2, Data: []byte("hi")}, 15, false},
	{"NoPayload", []byte("<\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), PortForwardCaptureRecord{Data: []byte{}}, 13, false},
	{"BadDirection", []byte("x\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), PortForwardCaptureRecord{}, 0, true},
	{"TooLarge", []byte(">\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x01"), PortForwardCaptureRecord{}, 0, true},
	{"NegativeOffset", []byte(">\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), PortForwardCaptureRecord{}, 0, true},
}

func TestParsePortForwardCaptureRecord(t *testing.T) {
	for _, tc := range pftCaptureCases {
		t.Run(tc.name, func(t *testing.T) {
			rec, n, err := ParsePortForwardCaptureRecord(tc.in)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrPortForwardCaptureFormat)) {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if n != tc.n || rec.ToPod != tc.want.ToPod || rec.Offset != tc.want.Offset || !bytes.Equal(rec.Data, tc.want.Data) {
				t.Fatalf("got %+v, %d; want %+v, %d", rec, n, tc.want, tc.n)
			}
			if n > 0 {
				if again := AppendPortForwardCaptureRecord(nil, rec); !bytes.Equal(again, tc.in[:n]) {
					t.Errorf("re-encoded as %q, want %q", again, tc.in[:n])
				}
			}
		})
	}
}

// FuzzParsePortForwardCaptureRecord checks the decoder never panics, never
// claims more bytes than it has, asks for more only for a prefix of a
// valid record, and round-trips what it decodes.
func FuzzParsePortForwardCaptureRecord(f *testing.F) {
	for _, tc := range pftCaptureCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := ParsePortForwardCaptureRecord(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n %d", err, n)
			}
			return
		}
		if n < 0 || n > len(b) {
			t.Fatalf("n %d of %d bytes", n, len(b))
		}
		if n == 0 {
			if rec.ToPod || rec.Offset != 0 || rec.Data != nil {
				t.Fatalf("a record %+v with n 0", rec)
			}
			// With a whole header, what is missing is payload: adding
			// it must complete the record.
			if len(b) >= portForwardCaptureHeaderLen {
				full := append(bytes.Clone(b), make([]byte, PortForwardCaptureMaxPayload)...)
				if _, m, err := ParsePortForwardCaptureRecord(full); err != nil || m == 0 {
					t.Fatalf("%q needs more bytes, but completing it gives n %d, err %v", b, m, err)
				}
			}
			return
		}
		if again := AppendPortForwardCaptureRecord(nil, rec); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded as %q, want %q", again, b[:n])
		}
	})
}

// pftFailingWriteCloser fails writes after n successful ones.
type pftFailingWriteCloser struct {
	bytes.Buffer
	okWrites int
}

func (w *pftFailingWriteCloser) Write(p []byte) (int, error) {
	if w.okWrites == 0 {
		return 0, io.ErrClosedPipe
	}
	w.okWrites--
	return w.Buffer.Write(p)
}

func (w *pftFailingWriteCloser) Close() error { return nil }

// TestPortForwardCaptureWriter checks the writer's records decode back to
// the chunks in order, and that a failure sticks.
func TestPortForwardCaptureWriter(t *testing.T) {
	w := &pftFailingWriteCloser{okWrites: 6}
	c := newPortForwardCapture(w, time.Now())
	chunks := []struct {
		toPod bool
		data  string
	}{{true, "GET / HTTP/1.1\r\n\r\n"}, {false, "HTTP/1.1 200 OK\r\n"}, {false, "\r\n"}}
	for _, ch := range chunks {
		record := c.fromPod
		if ch.toPod {
			record = c.toPod
		}
		if err := record([]byte(ch.data)); err != nil {
			t.Fatal(err)
		}
	}
	b := w.Bytes()
	var last time.Duration
	for i, ch := range chunks {
		rec, n, err := ParsePortForwardCaptureRecord(b)
		if err != nil || n == 0 {
			t.Fatalf("record %d: n %d, err %v", i, n, err)
		}
		if rec.ToPod != ch.toPod || string(rec.Data) != ch.data || rec.Offset < last {
			t.Errorf("record %d: %+v, want %+v after %v", i, rec, ch, last)
		}
		last = rec.Offset
		b = b[n:]
	}
	if len(b) != 0 {
		t.Errorf("%d bytes after the records", len(b))
	}
	if err := c.toPod([]byte("x")); !errors.Is(err, ErrPortForwardCapture) || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to a failed writer: %v", err)
	}
	w.okWrites = 10
	if err := c.toPod([]byte("y")); !errors.Is(err, ErrPortForwardCapture) {
		t.Errorf("a capture went on after failing: %v", err)
	}
}
