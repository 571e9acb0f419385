package k8swire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	restclientwatch "k8s.io/client-go/rest/watch"
)

const protobufWatchCT = ContentTypeProtobuf + ";stream=watch"

var testCodecs = serializer.NewCodecFactory(maskScheme)

// watchSerializer is the serializer the apiserver and client-go use for a
// watch of the given media type.
func watchSerializer(t testing.TB, mediaType string) runtime.SerializerInfo {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(testCodecs.SupportedMediaTypes(), mediaType)
	if !ok || info.StreamSerializer == nil {
		t.Fatalf("no stream serializer for %s", mediaType)
	}
	return info
}

// encodeWatch frames events as the apiserver does, with client-go's
// watch encoder: the object by the embedded serializer, the event by the
// stream serializer, in the stream's framing.
func encodeWatch(t testing.TB, mediaType string, events []watch.Event) []byte {
	t.Helper()
	info := watchSerializer(t, mediaType)
	var buf bytes.Buffer
	enc := restclientwatch.NewEncoder(streaming.NewEncoder(info.StreamSerializer.Framer.NewFrameWriter(&buf), info.StreamSerializer.Serializer), info.Serializer)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// decodeWatch reads a stream back with client-go's watch decoder.
func decodeWatch(t testing.TB, mediaType string, b []byte) []watch.Event {
	t.Helper()
	info := watchSerializer(t, mediaType)
	fr := info.StreamSerializer.Framer.NewFrameReader(io.NopCloser(bytes.NewReader(b)))
	dec := restclientwatch.NewDecoder(streaming.NewDecoder(fr, info.StreamSerializer.Serializer), info.Serializer)
	var out []watch.Event
	for {
		typ, obj, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding masked watch: %v", err)
		}
		out = append(out, watch.Event{Type: typ, Object: obj})
	}
}

func watchEvents() []watch.Event {
	modified := testSecret("db")
	modified.Data["password"] = []byte(testPassword + "-rotated")
	return []watch.Event{
		{Type: watch.Added, Object: testSecret("db")},
		{Type: watch.Modified, Object: modified},
		{Type: watch.Deleted, Object: testSecret("db")},
		{Type: watch.Bookmark, Object: &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: "5000", Annotations: map[string]string{"k8s.io/initial-events-end": "true"}}}},
		{Type: watch.Error, Object: &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
			Reason: metav1.StatusReasonExpired, Code: 410, Message: "too old resource version (token " + testJWT + ")"}},
	}
}

func TestMaskWatch(t *testing.T) {
	m := newTestMasker(t, testConfig)
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets?watch=true")
	for _, mt := range []struct{ mediaType, contentType string }{
		{"application/json", "application/json"},
		{ContentTypeProtobuf, protobufWatchCT},
	} {
		in := encodeWatch(t, mt.mediaType, watchEvents())
		readers := map[string]func() io.Reader{
			"whole":    func() io.Reader { return bytes.NewReader(in) },
			"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
			"data+EOF": func() io.Reader { return iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(in))) },
		}
		for name, r := range readers {
			t.Run(mt.mediaType+"/"+name, func(t *testing.T) {
				var out bytes.Buffer
				flushes := 0
				if err := m.MaskWatch(req, mt.contentType, r(), &out, func() { flushes++ }); err != nil {
					t.Fatal(err)
				}
				assertNoSecrets(t, out.Bytes())
				got := decodeWatch(t, mt.mediaType, out.Bytes())
				want := watchEvents()
				if len(got) != len(want) || flushes != len(want) {
					t.Fatalf("%d events, %d flushes; want %d", len(got), flushes, len(want))
				}
				for i, ev := range got {
					if ev.Type != want[i].Type {
						t.Errorf("event %d: type %s, want %s", i, ev.Type, want[i].Type)
					}
					switch o := ev.Object.(type) {
					case *corev1.Secret:
						for k, v := range o.Data {
							if string(v) != MaskMarker {
								t.Errorf("event %d: data.%s = %q", i, k, v)
							}
						}
						if la, ok := o.Annotations[LastAppliedAnnotation]; ok && la != MaskMarker {
							t.Errorf("event %d: last-applied %q", i, la)
						}
						if ev.Type == watch.Bookmark && (o.ResourceVersion != "5000" || o.Annotations["k8s.io/initial-events-end"] != "true") {
							t.Errorf("bookmark changed: %+v", o)
						}
					case *metav1.Status:
						if o.Message != "too old resource version (token "+MaskMarker+")" || o.Code != 410 {
							t.Errorf("status: %+v", o)
						}
					default:
						t.Errorf("event %d: %T", i, o)
					}
				}
			})
		}
	}
}

// TestMaskWatchTable covers kubectl get -w: the events hold Tables.
func TestMaskWatchTable(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets?watch=true")
	row := secretTable(t, metav1.IncludeObject, testSecret("a"))
	in := []byte(`{"type":"ADDED","object":` + string(row) + "}\n" + `{"type":"MODIFIED","object":` + string(secretTable(t, metav1.IncludeMetadata, testSecret("a"))) + "}\n")
	var out bytes.Buffer
	if err := m.MaskWatch(req, "application/json;as=Table;g=meta.k8s.io;v=v1", bytes.NewReader(in), &out, nil); err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, out.Bytes())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d events: %s", len(lines), out.Bytes())
	}
	for _, l := range lines {
		ev := decodeMap(t, []byte(l))
		if at(ev, "object", "rows", 0, "object", "metadata", "annotations", LastAppliedAnnotation) != MaskMarker {
			t.Errorf("event not masked: %s", l)
		}
	}
}

// frame is one length-prefixed protobuf watch frame.
func frame(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestMaskWatchFailsClosed(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true, DefaultPatterns: true, MaxWatchEvent: 2048})
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets?watch=true")
	big := testSecret("big")
	big.Data["blob"] = bytes.Repeat([]byte{'x'}, 4096)
	small := []watch.Event{{Type: watch.Added, Object: &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte(testPassword)}}}}
	jsonSmall := encodeWatch(t, "application/json", small)
	pbSmall := encodeWatch(t, ContentTypeProtobuf, small)
	jsonBig := encodeWatch(t, "application/json", []watch.Event{{Type: watch.Added, Object: big}})
	pbBig := encodeWatch(t, ContentTypeProtobuf, []watch.Event{{Type: watch.Added, Object: big}})
	cases := []struct {
		name, contentType string
		in                []byte
		err               error
	}{
		{"json oversized", "application/json", append(slicesConcat(jsonSmall), jsonBig...), ErrWatchEventTooLarge},
		{"json oversized unterminated", "application/json", append(slicesConcat(jsonSmall), jsonBig[:3000]...), ErrWatchEventTooLarge},
		{"protobuf oversized", protobufWatchCT, append(slicesConcat(pbSmall), pbBig...), ErrWatchEventTooLarge},
		{"json truncated", "application/json", append(slicesConcat(jsonSmall), jsonSmall[:len(jsonSmall)/2]...), io.ErrUnexpectedEOF},
		{"protobuf truncated", protobufWatchCT, append(slicesConcat(pbSmall), pbSmall[:len(pbSmall)/2]...), io.ErrUnexpectedEOF},
		{"protobuf truncated header", protobufWatchCT, append(slicesConcat(pbSmall), 0, 0), io.ErrUnexpectedEOF},
		{"json garbage", "application/json", append(slicesConcat(jsonSmall), "hunter2\n"...), ErrUnmaskable},
		{"json invalid event", "application/json", append(slicesConcat(jsonSmall), `{"type":"ADDED","object":{"data":{"k":"x"}},}`...), ErrUnmaskable},
		{"json event without object", "application/json", append(slicesConcat(jsonSmall), `{"type":"ADDED"}`...), ErrUnmaskable},
		{"protobuf garbage frame", protobufWatchCT, append(slicesConcat(pbSmall), frame([]byte("\xff\xff\xff\xff"))...), ErrUnmaskable},
		{"protobuf event with a JSON object", protobufWatchCT, append(slicesConcat(pbSmall), encodeWatch(t, "application/json", small)...), ErrUnmaskable},
		{"json stream labelled protobuf", protobufWatchCT, jsonSmall, ErrUnmaskable},
		{"cbor", "application/cbor-seq", pbSmall, ErrUnmaskable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := m.MaskWatch(req, c.contentType, bytes.NewReader(c.in), &out, nil)
			if !errors.Is(err, c.err) || !errors.Is(err, ErrUnmaskable) {
				t.Fatalf("MaskWatch: %v, want %v", err, c.err)
			}
			assertNoSecrets(t, out.Bytes())
			if strings.Contains(c.name, "labelled") || c.name == "cbor" {
				if out.Len() != 0 {
					t.Errorf("wrote %q", out.Bytes())
				}
				return
			}
			// The good first event went out, nothing of the bad one did.
			mediaType := "application/json"
			if c.contentType == protobufWatchCT {
				mediaType = ContentTypeProtobuf
			}
			if got := decodeWatch(t, mediaType, out.Bytes()); len(got) != 1 {
				t.Errorf("%d events written, want 1", len(got))
			}
		})
	}
}

func slicesConcat(b []byte) []byte { return append([]byte(nil), b...) }

func TestMaskWatchPassThrough(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	req := classify(t, "GET", "/api/v1/namespaces/dev/configmaps?watch=true")
	in := encodeWatch(t, ContentTypeProtobuf, []watch.Event{{Type: watch.Added, Object: testConfigMap()}})
	var out bytes.Buffer
	flushes := 0
	if err := m.MaskWatch(req, protobufWatchCT, bytes.NewReader(in), &out, func() { flushes++ }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) || flushes == 0 {
		t.Errorf("pass-through changed the stream or never flushed (%d)", flushes)
	}
}

// errWriter fails every write.
type errWriter struct{}

var errWrite = errors.New("client went away")

func (errWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestMaskWatchIOErrors(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets?watch=true")
	for _, ct := range []string{"application/json", protobufWatchCT} {
		mediaType, _ := mediaType(ct)
		in := encodeWatch(t, mediaType, watchEvents())
		if err := m.MaskWatch(req, ct, bytes.NewReader(in), errWriter{}, nil); !errors.Is(err, errWrite) {
			t.Errorf("%s: write error: %v", ct, err)
		}
		if err := m.MaskWatch(req, ct, iotest.ErrReader(iotest.ErrTimeout), io.Discard, nil); !errors.Is(err, iotest.ErrTimeout) {
			t.Errorf("%s: read error: %v", ct, err)
		}
	}
}
