package k8swire

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestMaskWatchEvent masks single events as WebSocket watches carry them:
// JSON and protobuf (no length prefix), and refuses what it cannot read.
func TestMaskWatchEvent(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true, DefaultPatterns: true, MaxWatchEvent: 64 << 10})
	req := classify(t, "GET", "/api/v1/namespaces/dev/secrets?watch=true")
	js := `{"type":"ADDED","object":` + string(encodeJSON(t, testSecret("a"))) + "}\n"
	out, changed, err := m.MaskWatchEvent(req, "application/json", []byte(js))
	if err != nil || !changed {
		t.Fatalf("JSON event: %v, %v", changed, err)
	}
	assertNoSecrets(t, out)

	ev := metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: encodeProto(t, testSecret("a"))}}
	pb, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, changed, err = m.MaskWatchEvent(req, ContentTypeProtobuf+";stream=watch", pb)
	if err != nil || !changed {
		t.Fatalf("protobuf event: %v, %v", changed, err)
	}
	assertNoSecrets(t, out)
	var got metav1.WatchEvent
	if err := got.Unmarshal(out); err != nil || got.Type != "MODIFIED" {
		t.Fatalf("masked event %q: %v", got.Type, err)
	}
	obj, err := DecodeProtobuf(got.Object.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if s := obj.(*corev1.Secret); string(s.Data["password"]) != MaskMarker {
		t.Errorf("password = %q", s.Data["password"])
	}

	for _, c := range []struct{ name, ct, event string }{
		{"truncated JSON", "application/json", js[:len(js)/2]},
		{"protobuf labelled JSON", "application/json", string(pb)},
		{"truncated protobuf", ContentTypeProtobuf, string(pb[:len(pb)/2])},
		{"CBOR", "application/cbor", "\xd9\xd9\xf7\xa0"},
		{"too large", "application/json", `{"type":"ADDED","object":{"kind":"Secret","data":{"a":"` + strings.Repeat("A", 64<<10) + `"}}}`},
	} {
		if out, _, err := m.MaskWatchEvent(req, c.ct, []byte(c.event)); !errors.Is(err, ErrUnmaskable) || out != nil {
			t.Errorf("%s: %v, want ErrUnmaskable and no output", c.name, err)
		}
	}
	if err := CheckWatchEventType("application/cbor"); !errors.Is(err, ErrUnmaskable) {
		t.Errorf("CBOR watch type: %v", err)
	}
}
