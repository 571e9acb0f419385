package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/benchcpu"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// benchEvent is shaped like the gateway's event for an allowed GET.
func benchEvent() *auditv1.Event {
	t := time.Date(2026, 11, 23, 11, 0, 0, 123456000, time.UTC)
	u := authnv1.UserInfo{Username: "oidc:alice@example.com", UID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
		Groups: []string{"oidc:platform", "oidc:dev", "system:authenticated"}}
	return &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    auditv1.LevelMetadata,
		AuditID:                  types.UID("7d7cbd2e-4a8e-4f4c-9d1c-3f3f5b0f2a11"),
		Stage:                    auditv1.StageResponseComplete,
		RequestURI:               "/api/v1/namespaces/dev/pods/toolbox",
		Verb:                     "get",
		User:                     u,
		ImpersonatedUser:         &u,
		SourceIPs:                []string{"10.0.0.7"},
		UserAgent:                "kubectl/v1.34.1 (linux/amd64) kubernetes/abcdef0",
		ObjectRef:                &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", Name: "toolbox", APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 200},
		RequestReceivedTimestamp: metav1.NewMicroTime(t),
		StageTimestamp:           metav1.NewMicroTime(t.Add(3 * time.Millisecond)),
		Annotations: map[string]string{
			AnnotationIssuer: "https://issuer.example.com", AnnotationCredential: "sha256:0123456789abcdef",
			AnnotationDecision: "allow", AnnotationRule: "dev-read", AnnotationMasked: "true",
		},
	}
}

func BenchmarkFileSinkWrite(b *testing.B) {
	for _, bc := range []struct {
		name     string
		parallel int // goroutines per GOMAXPROCS; 0 is one caller
	}{{"serial", 0}, {"parallel50", 25}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := NewFileSink(FileConfig{Path: filepath.Join(b.TempDir(), "events.jsonl")})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			b.ReportAllocs()
			defer benchcpu.Report(b)()
			if bc.parallel == 0 {
				ev := benchEvent()
				for b.Loop() {
					if err := s.Write(ctx, ev); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(bc.parallel)
			b.RunParallel(func(pb *testing.PB) {
				ev := benchEvent()
				for pb.Next() {
					if err := s.Write(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
