package console

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/audit"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func writeAuditFile(t *testing.T, events ...auditv1.Event) string {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	var b strings.Builder
	for _, ev := range events {
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func call(id, user, cred, verb, ns, name string, at time.Time, decision string, code int32, req string) auditv1.Event {
	ev := auditv1.Event{
		AuditID: types.UID(id), Verb: verb, Stage: auditv1.StageResponseComplete, Level: auditv1.LevelRequestResponse,
		RequestURI: "/api/v1/namespaces/" + ns + "/configmaps/" + name, User: authnv1.UserInfo{Username: user},
		ObjectRef:                &auditv1.ObjectReference{Resource: "configmaps", Namespace: ns, Name: name, APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: code},
		RequestReceivedTimestamp: metav1.NewMicroTime(at), StageTimestamp: metav1.NewMicroTime(at),
		Annotations: map[string]string{audit.AnnotationCredential: cred, audit.AnnotationDecision: decision},
	}
	if req != "" {
		ev.RequestObject = &runtime.Unknown{Raw: []byte(req), ContentType: "application/json"}
	}
	return ev
}

// TestTimelineGroupsCallsByToken lists the agent sessions (tokens), then
// one token's calls in order with their recorded, masked bodies.
func TestTimelineGroupsCallsByToken(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	big := `{"data":"` + strings.Repeat("x", maxBodyShown) + `"}`
	path := writeAuditFile(t,
		call("a1", "agent", "sha256:aaaa1111", "get", "dev", "cm", t0, "allow", 200, ""),
		call("b1", "bob", "sha256:bbbb2222", "get", "dev", "cm", t0.Add(time.Second), "allow", 200, ""),
		call("a2", "agent", "sha256:aaaa1111", "create", "prod", "cm", t0.Add(2*time.Second), "deny", 403, `{"metadata":{"name":"cm"},"data":{"k":"***"}}`),
		call("a3", "agent", "sha256:aaaa1111", "update", "dev", "cm", t0.Add(3*time.Second), "allow", 200, big),
	)
	h := newHarness(t, Config{AuditFile: path})
	c := h.browser(t)
	h.signIn(t, c, "aud@example.com", "auditors")
	_, body := get(t, c, h.srv.URL+"/ui/api/timeline")
	var list timelineView
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Sessions) != 2 || list.Sessions[0].Credential != "sha256:aaaa1111" || list.Sessions[0].Calls != 3 || list.Sessions[0].Refused != 1 {
		t.Fatalf("sessions %+v, want the agent's token first with 3 calls, 1 refused", list.Sessions)
	}
	_, body = get(t, c, h.srv.URL+"/ui/api/timeline?credential=sha256:aaaa1111")
	var tl timelineView
	if err := json.Unmarshal([]byte(body), &tl); err != nil {
		t.Fatal(err)
	}
	if len(tl.Calls) != 3 {
		t.Fatalf("calls %+v, want 3", tl.Calls)
	}
	c2 := tl.Calls[1]
	if c2.Verb != "create" || c2.Object != "prod/cm" || c2.Decision != "deny" || c2.Code != 403 || c2.Offset != 2 ||
		!strings.Contains(c2.Request, `"k":"***"`) || !strings.Contains(c2.Note, "rule=") {
		t.Errorf("second call %+v", c2)
	}
	if c3 := tl.Calls[2]; len(c3.Request) != maxBodyShown || !c3.BodiesTruncated {
		t.Errorf("a large body: %d bytes, truncated %v", len(c3.Request), c3.BodiesTruncated)
	}
	if r, _ := get(t, c, h.srv.URL+"/ui/api/timeline?credential=nonsense"); r.StatusCode != 400 {
		t.Errorf("a bad credential: %s, want 400", r.Status)
	}
}
