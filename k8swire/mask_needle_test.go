package k8swire

import (
	"bytes"
	"testing"
)

// dumbIn is needle.in as a plain loop over every position.
func dumbIn(n needle, b []byte) bool {
	for i := 0; i+len(n.lit) <= len(b); i++ {
		if n.fold && equalFoldASCII(b[i:i+len(n.lit)], n.lit) || !n.fold && bytes.Equal(b[i:i+len(n.lit)], n.lit) {
			return true
		}
	}
	return false
}

// FuzzNeedle: the needle search finds exactly what the plain loop finds,
// in bytes and in strings (which may fold more, never less).
func FuzzNeedle(f *testing.F) {
	for _, s := range []string{"Authorization: Bearer abc", "BEARER", "xbearexbearer", "eyJhbGciOi", "-----BEGIN RSA", ""} {
		f.Add(s, "bearer", true)
		f.Add(s, "eyJ", false)
	}
	f.Fuzz(func(t *testing.T, s, lit string, fold bool) {
		if lit == "" {
			return
		}
		if fold {
			lit = string(bytes.ToLower([]byte(lit)))
		}
		n := needle{lit: []byte(lit), fold: fold}
		want := dumbIn(n, []byte(s))
		if got := n.in([]byte(s)); got != want {
			t.Fatalf("in(%q, %q fold %t) = %t, want %t", s, lit, fold, got, want)
		}
		if got := n.inString(s); want && !got {
			t.Fatalf("inString(%q, %q fold %t) = false where in finds it", s, lit, fold)
		}
	})
}
