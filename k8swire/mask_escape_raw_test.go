package k8swire

import (
	"bytes"
	"testing"
)

// TestStreamMaskerMasksTheBytes: a secret whose first byte a terminal
// takes into an escape sequence (the final byte of "ESC SP", "ESC" or
// "ESC [") is not in the text a terminal shows, but it is in the bytes a
// log keeps: it is masked there, and the escape sequence stays whole
// (found by upgrade's FuzzExecOutputMasking).
func TestStreamMaskerMasksTheBytes(t *testing.T) {
	m, err := NewMasker(MaskConfig{DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	const key = "AKIAIOSFODNN7EXAMPLE"
	for _, prefix := range []string{"\x1b ", "\x1b", "\x1b[", "\x1b[1;"} {
		in := []byte("x " + prefix + key + " 0")
		for cut := range len(in) + 1 {
			s := m.NewStreamMasker()
			out := bytes.Clone(s.Write(in[:cut])) // valid until the next call
			out = append(out, s.Write(in[cut:])...)
			out = append(out, s.Flush()...)
			if bytes.Contains(out, []byte(key[1:])) {
				t.Errorf("%q cut at %d: %q", in, cut, out)
			}
			if !bytes.HasPrefix(out, []byte("x "+prefix+"A")) {
				t.Errorf("%q cut at %d: %q broke the escape sequence", in, cut, out)
			}
		}
	}
}
