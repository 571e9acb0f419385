package k8swire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var defaultPatternREs = func() []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, p := range DefaultMaskPatterns() {
		out = append(out, regexp.MustCompile(p))
	}
	return out
}()

// leakedString finds a string in a decoded JSON value that a default
// pattern matches, or a Secret whose data is not masked.
func leakedString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		for _, re := range defaultPatternREs {
			if re.MatchString(x) {
				return x, true
			}
		}
	case []any:
		for _, e := range x {
			if s, ok := leakedString(e); ok {
				return s, true
			}
		}
	case map[string]any:
		if x["kind"] == "Secret" && x["apiVersion"] == "v1" {
			for _, field := range []string{"data", "stringData"} {
				data, _ := x[field].(map[string]any)
				for k, val := range data {
					if s, ok := val.(string); ok && s != MaskMarkerBase64 && s != MaskMarker {
						return field + "." + k + "=" + s, true
					}
				}
			}
		}
		for _, e := range x {
			if s, ok := leakedString(e); ok {
				return s, true
			}
		}
	}
	return "", false
}

// leakedToken is leakedString for every string value of a JSON document,
// those of duplicate keys included, which decoding into a map would drop.
func leakedToken(data []byte) (string, bool) {
	type frame struct{ object, wantKey bool }
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				if top != nil && top.object {
					top.wantKey = true
				}
				stack = append(stack, frame{object: d == '{', wantKey: true})
			} else {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.object {
			top.wantKey = !top.wantKey
			if !top.wantKey {
				continue // a key
			}
		}
		if s, ok := tok.(string); ok {
			if leak, ok := leakedString(s); ok {
				return leak, true
			}
		}
	}
}

func FuzzMaskBody(f *testing.F) {
	for _, c := range jsonBodyCases() {
		f.Add(c.body(f))
	}
	// Inputs the fuzzer found: a Secret nested in an unknown object, a
	// secret under a duplicate key.
	f.Add([]byte(`{"":[{"kind":"Secret","apiVersion":"v1","data":{"":""}}]} `))
	f.Add([]byte(`{"data":{"":{"":"eyJ0000.eyJ00000."}},"data":""}`))
	for _, b := range []string{`{"kind":"Secret","data":{"a":`, `{"a":1} x`, `[1,2,{"a":"\ud800"}]`, `"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"`, "{\"a\":\"\xff\"}", `-0.5e+3`} {
		f.Add([]byte(b))
	}
	full := newTestMasker(f, testConfig)
	patternsOnly := newTestMasker(f, MaskConfig{DefaultPatterns: true})
	secrets := classify(f, "GET", "/api/v1/namespaces/dev/secrets")
	configMaps := classify(f, "GET", "/api/v1/namespaces/dev/configmaps")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return // an empty body passes as it is
		}
		for _, req := range []*Request{secrets, configMaps} {
			out, changed, err := full.MaskBody(req, "application/json", data)
			if (err == nil) != json.Valid(data) {
				t.Fatalf("MaskBody error %v, but json.Valid = %v", err, json.Valid(data))
			}
			if err != nil {
				return
			}
			if !changed && !bytes.Equal(out, data) {
				t.Fatal("unchanged, but the output differs")
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON out: %q", out)
			}
			var decoded any
			if err := json.Unmarshal(out, &decoded); err != nil {
				t.Fatal(err)
			}
			if s, ok := leakedString(decoded); ok {
				t.Fatalf("secret survived: %q in %q", s, out)
			}
			if s, ok := leakedToken(out); ok {
				t.Fatalf("secret survived: %q in %q", s, out)
			}
			if again, changed, err := full.MaskBody(req, "application/json", out); err != nil || changed || !bytes.Equal(again, out) {
				t.Fatalf("masking twice changed %q to %q (%v)", out, again, err)
			}
		}
		// Input without anything the patterns match comes out as it went in.
		out, changed, err := patternsOnly.MaskBody(configMaps, "application/json", data)
		if err != nil {
			return
		}
		if _, hit := leakedToken(data); !hit && (changed || !bytes.Equal(out, data)) {
			t.Fatalf("secret-free input changed: %q -> %q", data, out)
		}
	})
}

func FuzzMaskWatch(f *testing.F) {
	events := watchEvents()
	f.Add(encodeWatch(f, "application/json", events), false)
	f.Add(encodeWatch(f, ContentTypeProtobuf, events), true)
	f.Add([]byte(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"a":"aHVudGVyMg=="}}}{"type":"ERROR","object":{"kind":"Status"}}`), false)
	f.Add(frame([]byte{0x0a, 0x05, 'A', 'D', 'D', 'E', 'D', 0x12, 0x00}), true)
	m := newTestMasker(f, MaskConfig{DefaultRules: true, DefaultPatterns: true, MaxWatchEvent: 64 << 10})
	req := classify(f, "GET", "/api/v1/namespaces/dev/secrets?watch=true")
	f.Fuzz(func(t *testing.T, data []byte, proto bool) {
		ct := "application/json"
		if proto {
			ct = protobufWatchCT
		}
		var out bytes.Buffer
		err := m.MaskWatch(req, ct, bytes.NewReader(data), &out, nil)
		// Every event written is whole and masked, whatever came after it.
		n := 0
		if proto {
			n = checkProtobufEvents(t, out.Bytes())
		} else {
			for _, line := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var ev map[string]any
				if err := json.Unmarshal(line, &ev); err != nil {
					t.Fatalf("event written is not JSON: %q", line)
				}
				if s, ok := leakedString(ev); ok {
					t.Fatalf("secret survived: %q", s)
				}
				n++
			}
		}
		var again bytes.Buffer
		if err := m.MaskWatch(req, ct, bytes.NewReader(out.Bytes()), &again, nil); err != nil || !bytes.Equal(again.Bytes(), out.Bytes()) {
			t.Fatalf("masking the output again: %v", err)
		}
		if err == nil && n == 0 && len(bytes.TrimSpace(data)) > 0 && !proto {
			t.Fatalf("no error and no event for %q", data)
		}
	})
}

// checkProtobufEvents decodes the frames of a masked protobuf watch and
// checks their objects; it returns how many there are.
func checkProtobufEvents(t *testing.T, b []byte) int {
	n := 0
	for len(b) > 0 {
		if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
			t.Fatalf("partial frame written: %q", b)
		}
		size := int(binary.BigEndian.Uint32(b))
		var ev metav1.WatchEvent
		if err := ev.Unmarshal(b[4 : 4+size]); err != nil {
			t.Fatalf("frame does not decode: %v", err)
		}
		obj, _, err := maskProtobuf.Decode(ev.Object.Raw, nil, nil)
		if err != nil {
			t.Fatalf("object does not decode: %v", err)
		}
		var decoded any
		_ = json.Unmarshal(encodeJSON(t, obj), &decoded)
		if s, ok := leakedString(decoded); ok {
			t.Fatalf("secret survived: %q", s)
		}
		if s, ok := obj.(*corev1.Secret); ok {
			for k, v := range s.Data {
				if string(v) != MaskMarker {
					t.Fatalf("data.%s = %q", k, v)
				}
			}
		}
		b = b[4+size:]
		n++
	}
	return n
}

// streamSecrets are planted into fuzzed terminal output; sensitive is the
// part of each that must not come out.
var streamSecrets = []struct{ secret, sensitive string }{
	{testJWT, testJWT[20:60]},
	{testAWSKey, testAWSKey},
	{strings.ReplaceAll(testPEM, "\n", "\r\n"), "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw"},
	{"Authorization: Bearer 0123456789abcdefXYZ", "0123456789abcdefXYZ"},
}

func FuzzStreamMasker(f *testing.F) {
	f.Add([]byte("$ ls\r\n\x1b[32mok\x1b[0m\r\n"), uint16(3), uint16(9), uint8(0))
	f.Add([]byte("gr\xc3\xbc\xc3\x9f \xe2\x82\xac\x1b]8;;https://x/\x1b\\link\x1b]8;;\x1b\\"), uint16(3), uint16(20), uint8(1))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nQUJD\n"), uint16(10), uint16(40), uint8(2))
	f.Add([]byte("\x1b[31m\x1b"), uint16(1), uint16(2), uint8(3))
	f.Add([]byte("eyJhbGciOiJIUzI1NiJ9.eyJz\x1b[1mdWIiOiJ4In0.c2ln ok"), uint16(30), uint16(31), uint8(0))
	// Inputs the fuzzer found: a long secret whose start leaves the window
	// before it matches; a match sent whole that a second one follows.
	f.Add([]byte("000000000000000000000000000000"), uint16(30), uint16(109), uint8(0))
	f.Add([]byte("-----BEGIN0PRIVATE KEY-----000000"), uint16(135), uint16(66), uint8(0x8a))
	short := newTestMasker(f, MaskConfig{DefaultPatterns: true, MaxPatternLen: 64})
	long := newTestMasker(f, MaskConfig{DefaultPatterns: true})
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16, which uint8) {
		planted := streamSecrets[int(which)%len(streamSecrets)]
		p := int(cut1) % (len(data) + 1)
		in := slices.Concat(data[:p], []byte("\n"+planted.secret+"\n"), data[p:])
		for _, m := range []*Masker{short, long} {
			got := streamThrough(m, in, cut1, cut2)
			if bytes.Contains(got, []byte(planted.sensitive)) {
				t.Fatalf("secret survived (max %d): %q -> %q", m.maxPatternLen, in, got)
			}
			// Input without secrets comes out as it went in, however split.
			if _, changed := m.patterns.maskText(nil, data); !changed {
				if got := streamThrough(m, data, cut1, cut2); !bytes.Equal(got, data) {
					t.Fatalf("secret-free input changed (max %d): %q -> %q", m.maxPatternLen, data, got)
				}
			}
		}
	})
}

// streamThrough sends b through a new StreamMasker of m in three chunks,
// checking that no chunk splits a character of valid UTF-8 input.
func streamThrough(m *Masker, b []byte, cut1, cut2 uint16) []byte {
	i, j := int(cut1)%(len(b)+1), int(cut2)%(len(b)+1)
	i, j = min(i, j), max(i, j)
	s := m.NewStreamMasker()
	var out []byte
	for _, chunk := range [][]byte{b[:i], b[i:j], b[j:], nil} {
		var o []byte
		if chunk != nil {
			o = s.Write(chunk)
		} else {
			o = s.Flush()
		}
		if utf8.Valid(b) && !utf8.Valid(o) {
			panic(fmt.Sprintf("chunk %q splits a character", o))
		}
		out = append(out, o...)
	}
	return out
}

// TestFuzzLeakCheck guards the fuzz invariants' helper: the planted
// secrets match the default patterns, and unmasked Secret data is found.
func TestFuzzLeakCheck(t *testing.T) {
	for _, s := range streamSecrets {
		if _, hit := leakedString(s.secret); !hit {
			t.Errorf("%q does not match a default pattern", s.secret)
		}
	}
	if _, hit := leakedString(map[string]any{"kind": "Secret", "apiVersion": "v1", "data": map[string]any{"a": "eA=="}}); !hit {
		t.Error("unmasked Secret data not found")
	}
}
