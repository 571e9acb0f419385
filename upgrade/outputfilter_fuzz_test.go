package upgrade

import (
	"bytes"
	"slices"
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

// outputSecrets are planted into fuzzed exec output; sensitive is the part
// of each that must not reach the client or the recording.
var outputSecrets = []struct{ secret, sensitive string }{
	{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4IiwiYXVkIjoieSJ9.c2lnbmF0dXJlLW9mLWEtand0LXRoYXQtaXMtbG9uZw", "c2lnbmF0dXJlLW9mLWEtand0LXRoYXQtaXMtbG9uZw"},
	{"Authorization: Bearer 0123456789abcdefXYZ0123456789", "0123456789abcdefXYZ0123456789"},
	{"AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"},
}

// FuzzExecOutputMasking writes any output, with a secret planted in it,
// through the exec relay's tappedWriter with kubegate's stream masker, in
// writes of any sizes, then ends the session: the client and the
// recording get the same bytes, in which the secret's sensitive part never
// appears; output without a secret passes unchanged.
func FuzzExecOutputMasking(f *testing.F) {
	f.Add([]byte("$ kubectl get secret\r\n"), []byte{3, 9, 1}, uint16(5), uint8(0))
	f.Add([]byte("token: \x1b[1m"), []byte{1}, uint16(7), uint8(1))
	f.Add([]byte("key="), []byte{200, 200}, uint16(4), uint8(2))
	f.Add([]byte("gr\xc3\xbc\xc3\x9f"), []byte{2, 2, 2}, uint16(3), uint8(0))
	f.Add([]byte(nil), []byte{0}, uint16(0), uint8(1))
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultPatterns: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data, sizes []byte, at uint16, which uint8) {
		planted := outputSecrets[int(which)%len(outputSecrets)]
		p := int(at) % (len(data) + 1)
		in := slices.Concat(data[:p], []byte(" "+planted.secret+" "), data[p:])
		client, recorded := relayOutput(m, in, sizes)
		if !bytes.Equal(client, recorded) {
			t.Fatalf("client saw %q, recording has %q", client, recorded)
		}
		if bytes.Contains(client, []byte(planted.sensitive)) {
			t.Fatalf("secret passed: %q -> %q", in, client)
		}
		// Output the masker leaves alone when written whole passes
		// unchanged however it is cut.
		if bytes.Equal(streamMaskAll(m, data), data) {
			if c, _ := relayOutput(m, data, sizes); !bytes.Equal(c, data) {
				t.Fatalf("secret-free output %q came out as %q", data, c)
			}
		}
	})
}

// relayOutput writes in through a tappedWriter with a stream masker, cut
// into writes of the sizes given (cycled; 0 means the rest), then flushes
// as the session's end does. It returns what the client got and what was
// recorded.
func relayOutput(m *k8swire.Masker, in, sizes []byte) (client, recorded []byte) {
	var c, r bytes.Buffer
	tw := &tappedWriter{
		w:      &c,
		record: func(p []byte) error { r.Write(p); return nil },
		cancel: func(error) {},
		filter: m.NewStreamMasker(),
	}
	for i := 0; len(in) > 0; i++ {
		n := len(in)
		if len(sizes) > 0 && sizes[i%len(sizes)] > 0 {
			n = min(n, int(sizes[i%len(sizes)]))
		}
		if _, err := tw.Write(in[:n]); err != nil {
			panic(err)
		}
		in = in[n:]
	}
	tw.flush()
	return c.Bytes(), r.Bytes()
}

// streamMaskAll is what the stream masker makes of b written whole.
func streamMaskAll(m *k8swire.Masker, b []byte) []byte {
	s := m.NewStreamMasker()
	return append(s.Write(b), s.Flush()...)
}
