package audit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kubegate/kubegate/internal/benchcpu"
)

// safeRunSlow is safeRun one byte at a time: the reference.
func safeRunSlow(p []byte) int {
	n := 0
	for n < len(p) && p[n] < utf8.RuneSelf && jsonSafe[p[n]] {
		n++
	}
	return n
}

// TestSafeRun puts each unsafe byte at each position of a safe run and
// checks that the word-at-a-time scan stops exactly there.
func TestSafeRun(t *testing.T) {
	for b := range 256 {
		for at := range 20 {
			p := bytes.Repeat([]byte("a"), 20)
			p[at] = byte(b)
			if got, want := safeRun(p), safeRunSlow(p); got != want {
				t.Fatalf("byte %#x at %d: safeRun = %d, want %d", b, at, got, want)
			}
		}
	}
}

// FuzzSafeRun checks safeRun against the byte-at-a-time scan.
func FuzzSafeRun(f *testing.F) {
	f.Add([]byte("plain ascii text, long enough for words"))
	f.Add([]byte("\x1b[0m\"quoted\"\\ größe\x7f\x80"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, want := safeRun(p), safeRunSlow(p); got != want {
			t.Fatalf("safeRun(%q) = %d, want %d", p, got, want)
		}
	})
}

// appendTextSlow is appendText a rune at a time, into a slice that grows:
// the reference.
func appendTextSlow(dst, p []byte) ([]byte, bool) {
	invalid := false
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size == 1:
			dst, invalid = utf8.AppendRune(dst, utf8.RuneError), true
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r == '\b':
			dst = append(dst, `\b`...)
		case r == '\f':
			dst = append(dst, `\f`...)
		case r < 0x20:
			dst = fmt.Appendf(dst, `\u%04x`, r)
		default:
			dst = append(dst, p[:size]...)
		}
		p = p[size:]
	}
	return dst, invalid
}

// checkAppendText encodes p with appendText into buffers of room bytes, as
// writeText does, and checks the result against appendTextSlow: the same
// bytes, the same invalid flag, and every cut on a rune boundary.
func checkAppendText(t *testing.T, p []byte, room int) {
	t.Helper()
	want, wantInv := appendTextSlow(nil, p)
	var got []byte
	inv := false
	for rest := p; len(rest) > 0; {
		buf, n, i := appendText(make([]byte, 0, room), rest)
		if n == 0 {
			t.Fatalf("room %d: no progress at %q", room, rest)
		}
		part, _ := appendTextSlow(nil, rest[:n])
		if !bytes.Equal(buf, part) {
			t.Fatalf("room %d: %q encodes as %q, want %q (cut inside a rune?)", room, rest[:n], buf, part)
		}
		got, inv = append(got, buf...), inv || i
		rest = rest[n:]
	}
	if !bytes.Equal(got, want) || inv != wantInv {
		t.Fatalf("room %d: appendText(%q) = %q, %t; want %q, %t", room, p, got, inv, want, wantInv)
	}
}

// TestAppendText checks every byte at every position of a run, and mixed
// text, against the reference, into buffers of many sizes.
func TestAppendText(t *testing.T) {
	for b := range 256 {
		for at := range 20 {
			p := bytes.Repeat([]byte("a"), 20)
			p[at] = byte(b)
			checkAppendText(t, p, 64)
			checkAppendText(t, p, maxEscape)
		}
	}
	mixed := []byte("y\ny\n\x1b[0m\"quoted\"\\ größe → \xff\xe2\x82 ok\x00\x7f\t\r\n" + strings.Repeat("plain text ", 10))
	for room := maxEscape; room < 80; room++ {
		checkAppendText(t, mixed, room)
	}
}

// FuzzAppendText checks appendText against the reference.
func FuzzAppendText(f *testing.F) {
	f.Add([]byte("y\ny\ny\ny\ny\n"), uint8(0))
	f.Add([]byte("\x1b[0m\"quoted\"\\ größe\x7f\x80 plain ascii text, long enough for words"), uint8(3))
	f.Fuzz(func(t *testing.T, p []byte, room uint8) {
		checkAppendText(t, p, maxEscape+int(room))
	})
}

// BenchmarkAppendText measures the JSON escaping of a recording alone, on
// what `yes` writes and on coloured log lines.
func BenchmarkAppendText(b *testing.B) {
	line := "\x1b[32m2026-03-04T12:00:00Z\x1b[0m INFO request served path=/api/v1/pods größe=42 → ok\r\n"
	for _, c := range []struct{ name, text string }{{"yes", "y\n"}, {"log", line}} {
		p := []byte(strings.Repeat(c.text, 32<<10/len(c.text)))
		dst := make([]byte, 0, bufferSize)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			defer benchcpu.Report(b)()
			for b.Loop() {
				for rest := p; len(rest) > 0; {
					_, n, _ := appendText(dst, rest)
					rest = rest[n:]
				}
			}
		})
	}
}
