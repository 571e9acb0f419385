package k8swire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// streamMask feeds body to a JSONStream in chunks of the given sizes (the
// last repeated) and returns everything it output.
func streamMask(m *Masker, req *Request, body []byte, limit int, sizes ...int) (out []byte, changed, listing bool, err error) {
	s := m.NewJSONStream(req, "application/json", limit)
	for k := 0; len(body) > 0; k++ {
		n := min(sizes[min(k, len(sizes)-1)], len(body))
		if err := s.Write(body[:n]); err != nil {
			return out, s.Changed(), s.listing, err
		}
		out = append(out, s.Next()...)
		body = body[n:]
	}
	err = s.Close()
	out = append(out, s.Next()...)
	return out, s.Changed(), s.listing, err
}

// checkStreamLikeBody checks that a JSONStream fed body in every chunking
// outputs what MaskBody gives for it, or fails where MaskBody fails, and
// that nothing it output before failing is more than MaskBody's output
// would have shown.
func checkStreamLikeBody(t *testing.T, m *Masker, req *Request, body []byte, chunkings [][]int) (listing bool) {
	t.Helper()
	want, wantChanged, wantErr := m.MaskBody(req, "application/json", body)
	for _, sizes := range chunkings {
		got, changed, l, err := streamMask(m, req, body, 1<<30, sizes...)
		listing = listing || l
		switch {
		case (err != nil) != (wantErr != nil):
			t.Fatalf("chunks %v: stream error %v, MaskBody error %v\nbody %q", sizes, err, wantErr, body)
		case err != nil:
			if !errors.Is(err, ErrUnmaskable) {
				t.Fatalf("chunks %v: error %v does not wrap ErrUnmaskable", sizes, err)
			}
			if len(got) > 0 && !maskedPrefix(m, req, got) {
				t.Fatalf("chunks %v: failed, but output %q holds what masking hides", sizes, got)
			}
		case !bytes.Equal(got, want):
			t.Fatalf("chunks %v: stream output differs from MaskBody's\nstream   %q\nMaskBody %q", sizes, got, want)
		case changed != wantChanged:
			t.Fatalf("chunks %v: changed %v, MaskBody %v", sizes, changed, wantChanged)
		}
	}
	return listing
}

// maskedPrefix reports whether a stream's output before it failed is
// masked: closed into a whole document, it is one masking leaves as it is.
func maskedPrefix(m *Masker, req *Request, partial []byte) bool {
	for _, tail := range []string{"", "]}", "}"} {
		whole := append(slices.Clone(partial), tail...)
		if !json.Valid(whole) {
			continue
		}
		out, _, err := m.MaskBody(req, "application/json", whole)
		return err == nil && bytes.Equal(out, whole)
	}
	return false
}

func testChunkings(n int) [][]int {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	random := make([]int, 64)
	for i := range random {
		random[i] = 1 + r.IntN(97)
	}
	return [][]int{{n + 1}, {1}, {2}, {7}, {64}, {4096}, random, {n / 2, n}}
}

// secretListJSON is a SecretList of n Secrets, as the apiserver writes it.
func secretListJSON(t testing.TB, n int) []byte {
	list := &corev1.SecretList{TypeMeta: metav1.TypeMeta{Kind: "SecretList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDJ9"}}
	for i := range n {
		s := testSecret(fmt.Sprintf("db-%d", i))
		s.TypeMeta = metav1.TypeMeta{}
		list.Items = append(list.Items, *s)
	}
	return append(encodeJSON(t, list), '\n')
}

func TestJSONStreamLikeMaskBody(t *testing.T) {
	full := newTestMasker(t, testConfig)
	for _, c := range jsonBodyCases() {
		t.Run(c.name, func(t *testing.T) {
			m := newTestMasker(t, c.cfg)
			body := c.body(t)
			checkStreamLikeBody(t, m, classify(t, "GET", c.url), body, testChunkings(len(body)))
		})
	}
	secrets := classify(t, "GET", "/api/v1/namespaces/dev/secrets")
	list := secretListJSON(t, 20)
	// listed are the cases masked item by item; the others are held whole.
	listed := map[string]bool{"list": true, "empty list": true, "spaces everywhere": true, "two items members": true, "two kinds": true,
		"items of another kind": true, "kind not a string": true, "numbers at chunk ends": true, "escapes": true, "truncated in an item": true, "truncated after items": true,
		"truncated number": true, "garbage in an item": true, "trailing comma": true, "data after": true, "missing comma": true, "bad literal": true}
	odd := []struct{ name, body string }{
		{"list", string(list)},
		{"empty list", `{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[]}`},
		{"spaces everywhere", " {\n \"kind\" : \"SecretList\" ,\t\"apiVersion\":\"v1\" , \"items\" : [ {\"data\":{\"a\":\"czNjcjN0\"}} , 1 , \"x\" , null ] , \"metadata\" : {\"continue\":\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\"} } \n"},
		{"kind after items", `{"apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}}],"kind":"SecretList"}`},
		{"no apiVersion", `{"kind":"SecretList","items":[{"data":{"a":"czNjcjN0"}}]}`},
		{"kind not a string", `{"kind":1,"apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}}]}`},
		{"not a list kind", `{"kind":"Secret","apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}}],"data":{"b":"czNjcjN0"}}`},
		{"status", `{"kind":"Status","apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}}]}`},
		{"items not an array", `{"kind":"SecretList","apiVersion":"v1","items":{"data":{"a":"czNjcjN0"}}}`},
		{"two items members", `{"kind":"SecretList","apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}}],"items":[{"data":{"b":"czNjcjN0"}}]}`},
		{"two kinds", `{"kind":"SecretList","kind":"Status","apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}}]}`},
		{"items of another kind", `{"kind":"List","apiVersion":"v1","items":[{"kind":"Secret","apiVersion":"v1","data":{"a":"czNjcjN0"}},{"kind":"ConfigMap","apiVersion":"v1","data":{"password":"s3cr3t"}}]}`},
		{"numbers at chunk ends", `{"kind":"SecretList","apiVersion":"v1","items":[12345678901234567890,-1.5e+300,true,false,null],"n":-0.25e-3}`},
		{"escapes", `{"kind":"Secret\u004cist","apiVersion":"v\u0031","items":[{"data":{"\u0061":"czNjcjN0\u003d"}}],"x":"\ud83d\ude00\\\""}`},
		{"truncated in an item", string(list[:len(list)/2])},
		{"truncated before items", `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVers`},
		{"truncated after items", `{"kind":"SecretList","apiVersion":"v1","items":[]`},
		{"truncated number", `{"kind":"SecretList","apiVersion":"v1","items":[1`},
		{"garbage in an item", `{"kind":"SecretList","apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}},{"data":x}]}`},
		{"trailing comma", `{"kind":"SecretList","apiVersion":"v1","items":[{"data":{}},]}`},
		{"data after", `{"kind":"SecretList","apiVersion":"v1","items":[]} {}`},
		{"missing comma", `{"kind":"SecretList","apiVersion":"v1","items":[{} {}]}`},
		{"bad literal", `{"kind":"SecretList","apiVersion":"v1","items":[nul]}`},
		{"protobuf", "k8s\x00\n\x0c\n\x02v1\x12\x06Secret"},
		{"not an object", `["kind","SecretList"]`},
		{"empty object", `{}`},
		{"empty body", ``},
		{"only space", " \n"},
	}
	for _, c := range odd {
		t.Run(c.name, func(t *testing.T) {
			if listing := checkStreamLikeBody(t, full, secrets, []byte(c.body), testChunkings(len(c.body))); listing != listed[c.name] {
				t.Errorf("masked item by item: %v, want %v", listing, listed[c.name])
			}
		})
	}
}

// TestJSONStreamListsItemByItem checks that a list goes out as its items
// arrive, holding one item at most, and that a document held whole obeys
// the limit.
func TestJSONStreamListsItemByItem(t *testing.T) {
	m := newTestMasker(t, testConfig)
	secrets := classify(t, "GET", "/api/v1/namespaces/dev/secrets")
	list := secretListJSON(t, 50)
	item := len(encodeJSON(t, testSecret("db-10")))
	s := m.NewJSONStream(secrets, "application/json", 2*item)
	var out []byte
	for i := 0; i < len(list); i += 512 {
		if err := s.Write(list[i:min(i+512, len(list))]); err != nil {
			t.Fatal(err)
		}
		next := s.Next()
		if i > len(list)/2 && len(next) == 0 && len(out) == 0 {
			t.Fatal("half the list read and nothing output")
		}
		out = append(out, next...)
	}
	if len(out) == 0 || len(out) > len(list) {
		t.Fatalf("output %d bytes before the end of a %d-byte list", len(out), len(list))
	}
	if !s.listing {
		t.Fatal("a SecretList was not masked item by item")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out = append(out, s.Next()...)
	want, _, _ := m.MaskBody(secrets, "application/json", list)
	if !bytes.Equal(out, want) {
		t.Fatal("output differs from MaskBody's")
	}
	if bytes.Contains(out, []byte("czNjcjN0")) || strings.Contains(string(out), "s3cr3t") {
		t.Fatal("a secret value was output")
	}

	// The same list held whole (its kind comes last) is over the limit.
	whole := bytes.Replace(list, []byte(`"kind":"SecretList",`), nil, 1)
	whole = bytes.Replace(whole, []byte("}\n"), []byte(`,"kind":"SecretList"}`), 1)
	_, _, listing, err := streamMask(m, secrets, whole, 2*item, 512)
	if !errors.Is(err, ErrUnmaskable) || listing {
		t.Fatalf("a whole list over the limit: listing %v, error %v", listing, err)
	}
	// One item over the limit fails too.
	_, _, _, err = streamMask(m, secrets, list, item/2, 512)
	if !errors.Is(err, ErrUnmaskable) {
		t.Fatalf("an item over the limit: error %v", err)
	}
}

func TestNewJSONStreamContentTypes(t *testing.T) {
	m := newTestMasker(t, testConfig)
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets")
	for ct, want := range map[string]bool{
		"application/json":                    true,
		"application/json;charset=utf-8":      true,
		"application/merge-patch+json":        true,
		"application/json;stream=watch":       false,
		"application/vnd.kubernetes.protobuf": false,
		"application/yaml":                    false,
		"text/plain":                          false,
		"":                                    false,
	} {
		if got := m.NewJSONStream(req, ct, 1<<20) != nil; got != want {
			t.Errorf("NewJSONStream(%q) = %v, want %v", ct, got, want)
		}
	}
}

// FuzzJSONStream checks that a JSONStream, fed in chunks, outputs what
// MaskBody gives for the whole body, or fails where it fails.
func FuzzJSONStream(f *testing.F) {
	for _, c := range jsonBodyCases() {
		f.Add(c.body(f), uint8(7))
	}
	f.Add(secretListJSON(f, 3), uint8(1))
	f.Add([]byte(`{"kind":"SecretList","apiVersion":"v1","items":[{"data":{"a":"czNjcjN0"}},1,"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"],"metadata":{}}`), uint8(3))
	full := newTestMasker(f, testConfig)
	patternsOnly := newTestMasker(f, MaskConfig{DefaultPatterns: true})
	secrets := classify(f, "GET", "/api/v1/namespaces/dev/secrets")
	configMaps := classify(f, "GET", "/api/v1/namespaces/dev/configmaps")
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		if len(data) == 0 {
			return
		}
		sizes := [][]int{{1 + int(chunk)}, {len(data)}}
		for _, m := range []*Masker{full, patternsOnly} {
			for _, req := range []*Request{secrets, configMaps} {
				checkStreamLikeBody(t, m, req, data, sizes)
			}
		}
	})
}
