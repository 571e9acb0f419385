package audit

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/benchcpu"
)

func FuzzParseCast(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCast(strings.NewReader(in))
		if c == nil {
			if err == nil || errors.Is(err, ErrTruncated) {
				t.Fatalf("no Cast with error %v", err)
			}
			return
		}
		// What was parsed, written again by the recorder's encoder, parses
		// to the same events, and writing that again gives the same bytes.
		first := encodeCast(t, c)
		again, err := ParseCast(bytes.NewReader(first))
		if err != nil {
			t.Fatalf("re-encoded cast: %v\n%s", err, first)
		}
		if len(again.Events) != len(c.Events) {
			t.Fatalf("re-encoded cast has %d events, want %d", len(again.Events), len(c.Events))
		}
		for i, ev := range again.Events {
			want := c.Events[i]
			if ev.Code != want.Code || ev.Data != want.Data || formatTime(ev.Time) != formatTime(want.Time) {
				t.Fatalf("event %d = %+v, want %+v", i, ev, want)
			}
		}
		if second := encodeCast(t, again); !bytes.Equal(second, first) {
			t.Fatalf("encoding is not stable:\n%s\n%s", first, second)
		}
	})
}

func formatTime(s float64) string { return strconv.FormatFloat(s, 'f', 6, 64) }

// encodeCast writes c the way a Recording writes its lines.
func encodeCast(t *testing.T, c *Cast) []byte {
	t.Helper()
	var out bytes.Buffer
	line, err := encodeHeader(c.Header)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(line)
	w := bufio.NewWriterSize(&out, 64)
	for _, ev := range c.Events {
		w.WriteString("[" + formatTime(ev.Time) + `, "`)
		writeText(w, []byte(ev.Code))
		w.WriteString(`", "`)
		writeText(w, []byte(ev.Data))
		w.WriteString(eventSuffix)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// FuzzRecordingRoundTrip writes data to a recording as stdout, in chunks
// whose sizes come from sizes, and reads it back: the .cast holds the
// data with each invalid byte as U+FFFD, and with the raw sidecar the
// exact bytes.
func FuzzRecordingRoundTrip(f *testing.F) {
	for _, tc := range utf8Cases {
		var sizes []byte
		for _, ch := range tc.chunks {
			sizes = append(sizes, byte(len(ch)))
		}
		f.Add([]byte(strings.Join(tc.chunks, "")), sizes)
	}
	f.Add(bytes.Repeat([]byte("é\xff\x1b[0m"), 5000), []byte{0x7f, 1, 0xff, 3})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		r, _ := record(t, RecordingConfig{})
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(sizes) > 0 {
				// Small chunks mostly; a set high bit makes a long one.
				s := int(sizes[i%len(sizes)])
				n = min(n, s&0x7f+1+(s>>7)*bufferSize)
			}
			if err := r.Output(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		sum := closeRecording(t, r)
		if sum.BytesOut != int64(len(data)) {
			t.Errorf("BytesOut = %d, want %d", sum.BytesOut, len(data))
		}
		c := readCast(t, sum.Path)
		if want := string([]rune(string(data))); c.Output() != want {
			t.Fatalf("Output %q, want %q", c.Output(), want)
		}
		prev := 0.0
		for _, ev := range c.Events {
			if ev.Time < prev {
				t.Fatalf("time goes back: %v after %v", ev.Time, prev)
			}
			prev = ev.Time
		}
		if sum.RawPath == "" {
			return
		}
		raw, err := os.ReadFile(sum.RawPath)
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := ParseRaw(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ApplyRaw(chunks); err != nil {
			t.Fatal(err)
		}
		if c.Output() != string(data) {
			t.Fatalf("Output after ApplyRaw %q, want %q", c.Output(), data)
		}
	})
}

// BenchmarkRecordingOutputShortLines records what `yes` writes, "y\n"
// over and over, in 32 KiB chunks (what the relay copies at once): every
// other byte needs an escape, the worst case of ordinary text, and the
// output of the end-to-end exec throughput benchmark.
func BenchmarkRecordingOutputShortLines(b *testing.B) {
	chunk := bytes.Repeat([]byte("y\n"), 16<<10)
	benchRecordingOutput(b, chunk)
}

// benchRecordingOutput records chunk as output, over and over.
func benchRecordingOutput(b *testing.B, chunk []byte) {
	b.Helper()
	r, err := NewRecording(RecordingConfig{Dir: b.TempDir(), SessionID: "bench", FlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	report := benchcpu.Report(b)
	for b.Loop() {
		if err := r.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	report()
	b.StopTimer()
	if _, err := r.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRecordingOutput measures recording terminal output in 4 KiB
// chunks: ANSI colours, some non-ASCII text, newlines.
func BenchmarkRecordingOutput(b *testing.B) {
	line := "\x1b[32m2026-03-04T12:00:00Z\x1b[0m INFO request served path=/api/v1/pods größe=42 → ok\r\n"
	chunk := []byte(strings.Repeat(line, 4096/len(line)+1)[:4096])
	benchRecordingOutput(b, chunk)
}
