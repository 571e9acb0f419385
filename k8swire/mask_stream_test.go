package k8swire

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// runStream writes chunks through a fresh StreamMasker and returns each
// Write's output and the Flush.
func runStream(m *Masker, chunks ...string) []string {
	s := m.NewStreamMasker()
	var outs []string
	for _, c := range chunks {
		outs = append(outs, string(s.Write([]byte(c))))
	}
	return append(outs, string(s.Flush()))
}

// splitAt cuts s at the given offsets.
func splitAt(s string, offsets ...int) []string {
	var out []string
	at := 0
	for _, o := range offsets {
		out = append(out, s[at:o])
		at = o
	}
	return append(out, s[at:])
}

func TestStreamMasker(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultPatterns: true})
	pemOut := "$ cat key.pem\r\n" + strings.ReplaceAll(testPEM, "\n", "\r\n") + "\r\n$ "
	begin := strings.Index(pemOut, "-----BEGIN")
	body := strings.Index(pemOut, "MIIE")
	end := strings.Index(pemOut, "-----END")
	cases := []struct {
		name   string
		chunks []string
		want   string
		// ready, if set, is what the first Write must return at once.
		ready *string
	}{
		{
			name:   "pem key in 3 chunks at awkward boundaries",
			chunks: splitAt(pemOut, begin+7, body+37),
			want:   "$ cat key.pem\r\n" + MaskMarker + "\r\n$ ",
		},
		{
			name:   "pem key split inside the footer",
			chunks: splitAt(pemOut, begin+1, end+3),
			want:   "$ cat key.pem\r\n" + MaskMarker + "\r\n$ ",
		},
		{
			name:   "jwt split in its header",
			chunks: []string{"TOKEN=e", "yJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIi", "OiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGV2OmJvdCJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg\n"},
			want:   "TOKEN=" + MaskMarker + "\n",
			ready:  ptr("TOKEN="),
		},
		{
			name:   "bearer token split in the scheme",
			chunks: []string{"Authorization: Bea", "rer abcdefghijkl", "mnop\r\n"},
			want:   "Authorization: Bearer " + MaskMarker + "\r\n",
		},
		{
			name:   "aws key at the end of a chunk is held until the next byte",
			chunks: []string{"key=" + testAWSKey, "\n"},
			want:   "key=" + MaskMarker + "\n",
			ready:  ptr("key="),
		},
		{
			name:   "coloured secret keeps its colours",
			chunks: []string{"\x1b[32m" + testAWSKey[:6], testAWSKey[6:] + "\x1b[0m ok\n"},
			want:   "\x1b[32m" + MaskMarker + "\x1b[0m ok\n",
		},
		{
			name:   "escape sequence inside a secret is kept after the marker",
			chunks: []string{"eyJhbGciOiJIUzI1NiJ9.eyJz\x1b[1mdWIiOiJ4In0.c2ln ok"},
			want:   MaskMarker + "\x1b[1m ok",
		},
		{
			name:   "escape sequence split over chunks is held whole",
			chunks: []string{"ls\r\n\x1b[3", "1mred\x1b[", "0m\r\n"},
			want:   "ls\r\n\x1b[31mred\x1b[0m\r\n",
			ready:  ptr("ls\r\n"),
		},
		{
			name:   "token in a hyperlink",
			chunks: []string{"\x1b]8;;https://x/?t=" + testJWT[:40], testJWT[40:] + "\x1b\\link\x1b]8;;\x1b\\\n"},
			want:   "\x1b]8;;https://x/?t=" + MaskMarker + "\x1b\\link\x1b]8;;\x1b\\\n",
		},
		{
			name:   "utf-8 split",
			chunks: []string{"gr\xc3", "\xbc\xc3\x9f ", "\xe2\x82", "\xac 1\n"},
			want:   "grüß € 1\n",
			ready:  ptr("gr"),
		},
		{
			name:   "base64 private key in a kubeconfig",
			chunks: []string{"    client-key-data: LS0tLS1CRUdJTiBSU0Eg", "UFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB\n", "    token: x\n"},
			want:   "    client-key-data: " + MaskMarker + "\n    token: x\n",
		},
		{
			name:   "base64 certificate is not a secret",
			chunks: []string{"certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=\n"},
			want:   "certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=\n",
		},
		{
			name:   "no secret: sent at once",
			chunks: []string{"total 0\r\n$ ", "ls\r\n"},
			want:   "total 0\r\n$ ls\r\n",
			ready:  ptr("total 0\r\n$ "),
		},
		{
			name:   "aws key glued to a word is not one",
			chunks: []string{"X" + testAWSKey[:4], testAWSKey[4:] + "Y\n"},
			want:   "X" + testAWSKey + "Y\n",
		},
		{
			name:   "bearer after a word boundary only",
			chunks: []string{"xbearer 0123456789abcdef", "\n"},
			want:   "xbearer 0123456789abcdef\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outs := runStream(m, c.chunks...)
			got := strings.Join(outs, "")
			if got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if c.ready != nil && outs[0] != *c.ready {
				t.Errorf("first write returned %q, want %q", outs[0], *c.ready)
			}
			whole, _ := m.patterns.maskText(nil, []byte(strings.Join(c.chunks, "")))
			if got != string(whole) {
				t.Errorf("stream %q differs from whole text %q", got, whole)
			}
			if utf8.ValidString(c.want) {
				for i, o := range outs {
					if !utf8.ValidString(o) {
						t.Errorf("output %d splits a character: %q", i, o)
					}
				}
			}
			for i, o := range outs {
				if _, open := escapeRegions([]byte(o), nil); open >= 0 {
					t.Errorf("output %d ends inside an escape sequence: %q", i, o)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestStreamMaskerEverySplit checks the stream masker against masking the
// whole text at once, for every split into three chunks.
func TestStreamMaskerEverySplit(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultPatterns: true, Patterns: []string{`(?i)password=(?P<mask>\S+)`}})
	inputs := []string{
		"a " + testAWSKey + " b\r\n\x1b[1mPASSWORD=x\x1b[0m\r\nbearer 0123456789abcdef\n",
		"key:\n" + testPEM + "\nnext " + testJWT,
		"é\x1b]0;title\x07ü " + testJWT[:30] + "\x1b[K" + testJWT[30:],
	}
	for _, in := range inputs {
		want, _ := m.patterns.maskText(nil, []byte(in))
		assertNoSecrets(t, want)
		step := max(1, len(in)/40)
		for i := 0; i <= len(in); i += step {
			for j := i; j <= len(in); j += step {
				got := strings.Join(runStream(m, in[:i], in[i:j], in[j:]), "")
				if got != string(want) {
					t.Fatalf("split %d,%d of %q:\ngot  %q\nwant %q", i, j, in, got, want)
				}
			}
		}
	}
}

// TestStreamMaskerLongMatch: a match longer than MaxPatternLen is masked to
// where the window saw it, and the stream does not hold more than that.
func TestStreamMaskerLongMatch(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultPatterns: true, MaxPatternLen: 64})
	s := m.NewStreamMasker()
	var out bytes.Buffer
	out.Write(s.Write([]byte("-----BEGIN PRIVATE KEY-----\n")))
	for range 20 {
		out.Write(s.Write([]byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n")))
		if len(s.buf)-s.sent > 64+maxEscapeLen {
			t.Fatalf("holding %d bytes", len(s.buf))
		}
	}
	out.Write(s.Flush())
	if strings.Count(out.String(), "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2") > 0 {
		t.Errorf("key body leaked: %q", out.String())
	}
}

// TestStreamMaskerLongMatchSmallWrites sends a key longer than
// MaxPatternLen a few bytes at a time.
func TestStreamMaskerLongMatchSmallWrites(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultPatterns: true, MaxPatternLen: 64})
	in := "$ cat k\n" + testPEM + "\n$ ls\n"
	for _, size := range []int{1, 7, 50, 64, 65, 200} {
		var chunks []string
		for i := 0; i < len(in); i += size {
			chunks = append(chunks, in[i:min(i+size, len(in))])
		}
		got := strings.Join(runStream(m, chunks...), "")
		assertNoSecrets(t, []byte(got))
		if !strings.HasPrefix(got, "$ cat k\n"+MaskMarker) || !strings.HasSuffix(got, "$ ls\n") || strings.Contains(got, "PRIVATE") {
			t.Errorf("size %d: %q", size, got)
		}
	}
}

func TestStreamMaskerNoPatterns(t *testing.T) {
	s := newTestMasker(t, MaskConfig{DefaultRules: true}).NewStreamMasker()
	in := []byte("AKIAIOSFODNN7EXAMPLE")
	if out := s.Write(in); &out[0] != &in[0] {
		t.Error("without patterns Write must pass its input through")
	}
	if s.Flush() != nil {
		t.Error("Flush without patterns returned bytes")
	}
}

func TestEscapeRegions(t *testing.T) {
	cases := []struct {
		in      string
		regions []escRegion
		open    int
	}{
		{"plain", nil, -1},
		{"\x1b[31mx", []escRegion{{0, 5, false}}, -1},
		{"x\x1b[3", nil, 1},
		{"x\x1b", nil, 1},
		{"\x1b]0;t\x07x", []escRegion{{0, 2, true}, {5, 6, true}}, -1},
		{"\x1b]8;;u\x1b\\", []escRegion{{0, 2, true}, {6, 8, true}}, -1},
		{"\x1b]8;;u", []escRegion{{0, 2, true}}, 0},
		{"\x1b(Bx", []escRegion{{0, 3, false}}, -1},
		{"\x1b7x", []escRegion{{0, 2, false}}, -1},
		{"\x1b\x01", []escRegion{{0, 1, false}}, -1},
	}
	for _, c := range cases {
		got, open := escapeRegions([]byte(c.in), nil)
		if open != c.open || len(got) != len(c.regions) {
			t.Errorf("%q: regions %v open %d; want %v %d", c.in, got, open, c.regions, c.open)
			continue
		}
		for i := range got {
			if got[i] != c.regions[i] {
				t.Errorf("%q: regions %v; want %v", c.in, got, c.regions)
			}
		}
	}
}

// leftmostSlow is holdMatcher.leftmost trying every place whose byte can
// start a match: the reference.
func leftmostSlow(h *holdMatcher, text []byte, from, limit int) int {
	for c := from; c < min(limit, len(text)); c++ {
		if h.first[text[c]] && h.re.Match(text[c:]) {
			return c
		}
	}
	return -1
}

// TestHoldMatcherStarts checks the look-back of the default patterns whose
// first bytes are looked for one by one against the reference, from and up
// to every place of texts that begin matches, whole or cut short.
func TestHoldMatcherStarts(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultPatterns: true})
	texts := []string{
		"y\ny\ny\nA",
		"noise AKIA bearer Bear b BEARER abc AKIAIOSFODNN7EXAMPL",
		"ASIA" + strings.Repeat("X", 15),
		"x Bearer  abcdefgh",
		"AbBaAKbearbeAR",
	}
	tried := 0
	for i := range m.patterns.holds {
		h := &m.patterns.holds[i]
		if len(h.lit) > 0 || h.starts == nil {
			continue
		}
		tried++
		for _, text := range texts {
			b := []byte(text)
			for from := 0; from <= len(b); from++ {
				for limit := from; limit <= len(b)+1; limit++ {
					if got, want := h.leftmost(b, from, limit), leftmostSlow(h, b, from, limit); got != want {
						t.Fatalf("pattern %d, %q [%d, %d): leftmost = %d, want %d", i, text, from, limit, got, want)
					}
				}
			}
		}
	}
	if tried == 0 {
		t.Fatal("no default pattern is looked for by its first bytes")
	}
}
