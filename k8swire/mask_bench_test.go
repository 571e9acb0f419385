package k8swire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchSecretList is a list of n Secrets shaped like a cluster's: labels,
// managed fields, three data keys, and a last-applied annotation on every
// fourth.
func benchSecretList(n int) *corev1.SecretList {
	list := &corev1.SecretList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}, ListMeta: metav1.ListMeta{ResourceVersion: "987654"}}
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for i := range n {
		s := corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("app-%05d-credentials", i), Namespace: fmt.Sprintf("team-%02d", i%40),
				UID: "0b6c1a52-6f1e-4c5e-9a7d-3f2e1d0c9b8a", ResourceVersion: fmt.Sprint(100000 + i), CreationTimestamp: created,
				Labels: map[string]string{"app.kubernetes.io/name": "app", "app.kubernetes.io/instance": fmt.Sprint(i)},
				ManagedFields: []metav1.ManagedFieldsEntry{{
					Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &created, FieldsType: "FieldsV1",
					FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{".":{},"f:password":{},"f:token":{},"f:username":{}},"f:type":{}}`)},
				}},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				"username": []byte("service-account-" + fmt.Sprint(i)),
				"password": bytes.Repeat([]byte{'p'}, 32),
				"token":    bytes.Repeat([]byte{'t'}, 64),
			},
		}
		if i%4 == 0 {
			la, _ := json.Marshal(&s)
			s.Annotations = map[string]string{LastAppliedAnnotation: string(la)}
		}
		list.Items = append(list.Items, s)
	}
	return list
}

func BenchmarkMaskSecretList(b *testing.B) {
	list := benchSecretList(5000)
	bodies := map[string][]byte{"json": encodeJSON(b, list), "protobuf": encodeProto(b, list)}
	contentTypes := map[string]string{"json": "application/json", "protobuf": ContentTypeProtobuf}
	req := classify(b, "GET", "/api/v1/secrets")
	configs := []struct {
		name string
		cfg  MaskConfig
	}{
		{"passthrough", MaskConfig{}},
		{"rules", MaskConfig{DefaultRules: true}},
		{"rules+patterns", MaskConfig{DefaultRules: true, DefaultPatterns: true}},
	}
	for _, format := range []string{"json", "protobuf"} {
		body := bodies[format]
		// The floor: what reading the body at all costs.
		b.Run(format+"/baseline-decode", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if format == "json" {
					if !json.Valid(body) {
						b.Fatal("invalid")
					}
				} else if _, _, err := maskProtobuf.Decode(body, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, c := range configs {
			m := newTestMasker(b, c.cfg)
			b.Run(format+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := m.MaskBody(req, contentTypes[format], body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchTerminalOutput is 64 KiB of coloured log lines, with a secret in
// one line of every hundred if secrets.
func benchTerminalOutput(secrets bool) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "\x1b[2m2026-01-02T03:04:%02d.%03dZ\x1b[0m \x1b[32mINFO\x1b[0m request served path=/api/v1/items/%d status=200 bytes=%d user=\"alice@example.com\"\r\n", i%60, i%1000, i, i*37)
		if secrets && i%100 == 50 {
			fmt.Fprintf(&b, "export AWS_ACCESS_KEY_ID=%s TOKEN=%s\r\n", testAWSKey, testJWT)
		}
	}
	return b.Bytes()[:64<<10]
}

func BenchmarkStreamMasker(b *testing.B) {
	cases := []struct {
		name    string
		cfg     MaskConfig
		secrets bool
	}{
		{"passthrough", MaskConfig{}, false},
		{"patterns/clean", MaskConfig{DefaultPatterns: true}, false},
		{"patterns/secrets", MaskConfig{DefaultPatterns: true}, true},
	}
	// A key body that goes on past MaxPatternLen: every write continues a
	// match sent on suspicion.
	b.Run("patterns/endless-key", func(b *testing.B) {
		s := newTestMasker(b, MaskConfig{DefaultPatterns: true}).NewStreamMasker()
		s.Write([]byte("-----BEGIN PRIVATE KEY-----\n"))
		chunk := bytes.Repeat([]byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n"), 1024)
		b.SetBytes(int64(len(chunk)))
		b.ReportAllocs()
		for b.Loop() {
			if out := s.Write(chunk); bytes.Contains(out, chunk[:64]) {
				b.Fatal("key body sent")
			}
		}
	})
	for _, c := range cases {
		chunk := benchTerminalOutput(c.secrets)
		b.Run(c.name, func(b *testing.B) {
			s := newTestMasker(b, c.cfg).NewStreamMasker()
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Write(chunk)
			}
			_ = s.Flush()
		})
	}
}
