package k8swire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestMaskBodyProtobuf masks each object in protobuf and in JSON, and
// checks that the two agree: the protobuf result, read back as JSON, equals
// the masked JSON. So the reflective masker of decoded objects is checked
// against the byte-level JSON masker.
func TestMaskBodyProtobuf(t *testing.T) {
	s := testSecret("a")
	cases := []struct {
		name, url, contentType string
		obj                    runtime.Object
		changed                bool
	}{
		{"secret get", "/api/v1/namespaces/dev/secrets/a", ContentTypeProtobuf, testSecret("a"), true},
		{"secret list", "/api/v1/namespaces/dev/secrets", ContentTypeProtobuf,
			&corev1.SecretList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}, ListMeta: metav1.ListMeta{ResourceVersion: "9"}, Items: []corev1.Secret{listItem(testSecret("a")), listItem(testSecret("b"))}}, true},
		{"partial object metadata list", "/api/v1/secrets", ContentTypeProtobuf + ";as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
			&metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadataList"}, Items: []metav1.PartialObjectMetadata{{ObjectMeta: s.ObjectMeta}}}, true},
		{"configmap key pattern", "/api/v1/namespaces/dev/configmaps/web", ContentTypeProtobuf, testConfigMap(), true},
		{"pod env name pattern", "/api/v1/namespaces/dev/pods/web", ContentTypeProtobuf, testPod(), true},
		{"status", "/api/v1/namespaces/dev/secrets/a", ContentTypeProtobuf,
			&metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure, Message: "token " + testJWT, Code: 403}, true},
		{"secrets in a list of raw objects", "/api/v1/namespaces/dev/configmaps", ContentTypeProtobuf,
			&corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{{Raw: encodeJSON(t, testSecret("a"))}}}, true},
		{"nothing to mask", "/api/v1/namespaces/dev/configmaps/web", ContentTypeProtobuf,
			&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "web"}, Data: map[string]string{"a": "b"}}, false},
	}
	m := newTestMasker(t, testConfig)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := classify(t, "GET", c.url)
			pb := encodeProto(t, c.obj)
			out, changed, err := m.MaskBody(req, c.contentType, pb)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.changed {
				t.Fatalf("changed = %v", changed)
			}
			if !changed {
				if &out[0] != &pb[0] {
					t.Error("an unchanged body must come back as the input slice")
				}
				return
			}
			if !bytes.HasPrefix(out, []byte("k8s\x00")) {
				t.Fatalf("not protobuf: %q", out[:8])
			}
			assertNoSecrets(t, out)
			fromProto := decodeMap(t, protoToJSON(t, out))
			maskedJSON, _, err := m.MaskBody(req, "application/json", encodeJSON(t, c.obj))
			if err != nil {
				t.Fatal(err)
			}
			if want := decodeMap(t, maskedJSON); !reflect.DeepEqual(fromProto, want) {
				t.Errorf("protobuf and JSON masking differ:\nprotobuf %v\njson     %v", fromProto, want)
			}
			if again, changed, err := m.MaskBody(req, c.contentType, out); err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("masking twice changed the body (%v, %v)", changed, err)
			}
		})
	}
}

// listItem is s as a list holds it: without apiVersion and kind.
func listItem(s *corev1.Secret) corev1.Secret {
	c := *s
	c.TypeMeta = metav1.TypeMeta{}
	return c
}

// TestMaskProtobufUnchangedFields decodes a masked protobuf Secret and
// compares it with the original, the masked fields put back.
func TestMaskProtobufUnchangedFields(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	orig := testSecret("db")
	out, _, err := m.MaskBody(classify(t, "GET", "/api/v1/namespaces/dev/secrets/db"), ContentTypeProtobuf, encodeProto(t, orig))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := DecodeProtobuf(out)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*corev1.Secret)
	for k, v := range got.Data {
		if string(v) != MaskMarker {
			t.Errorf("data.%s = %q", k, v)
		}
	}
	if got.Annotations[LastAppliedAnnotation] != MaskMarker {
		t.Errorf("last-applied = %q", got.Annotations[LastAppliedAnnotation])
	}
	got.Data = orig.Data
	got.Annotations[LastAppliedAnnotation] = orig.Annotations[LastAppliedAnnotation]
	if !reflect.DeepEqual(got, orig) {
		t.Errorf("masked secret differs beyond the masked fields:\n%+v\n%+v", got, orig)
	}
}

// TestMaskProtobufTable: meta/v1 Table has no protobuf encoding; a body
// that claims to be one cannot be masked.
func TestMaskProtobufTable(t *testing.T) {
	unk := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"}, Raw: []byte{0x0a, 0x02, 0x08, 0x01}}
	b, err := unk.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	_, _, err = m.MaskBody(classify(t, "GET", "/api/v1/secrets"), ContentTypeProtobuf+";as=Table;g=meta.k8s.io;v=v1", append([]byte("k8s\x00"), b...))
	if !errors.Is(err, ErrUnmaskable) {
		t.Errorf("protobuf Table: %v, want ErrUnmaskable", err)
	}
}

// TestMaskProtobufEmbeddedSecret: with rules only, a Secret in a
// RawExtension of a protobuf List is still masked, by its kind.
func TestMaskProtobufEmbeddedSecret(t *testing.T) {
	m := newTestMasker(t, MaskConfig{DefaultRules: true})
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{{Raw: encodeJSON(t, testSecret("a"))}}}
	out, changed, err := m.MaskBody(classify(t, "GET", "/api/v1/namespaces/dev/secrets"), ContentTypeProtobuf, encodeProto(t, list))
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	assertNoSecrets(t, out)
}
