package audit

import (
	"bytes"
	"testing"
	"unicode/utf8"
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
