package audit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/rest"
)

// withBody adds a recorded request body and its content type to ev.
func withBody(ev *auditv1.Event, contentType, body string) *auditv1.Event {
	ev.RequestObject = &runtime.Unknown{Raw: []byte(body), ContentType: runtime.ContentTypeJSON}
	if contentType != "" {
		ev.Annotations[AnnotationContentType] = contentType
	}
	return ev
}

func ref(group, resource, sub, ns, name string) *auditv1.ObjectReference {
	return &auditv1.ObjectReference{APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
}

// mutatingSession is an agent session's audit log with every kind of
// call Reissue must send or skip.
func mutatingSession(t *testing.T) []*auditv1.Event {
	t.Helper()
	s := time.Second
	path := auditLog(t, 0,
		call("r01", 0*s, "list", "/api/v1/namespaces/prod/configmaps", ref("", "configmaps", "", "prod", ""), 200, nil),
		withBody(call("r02", 1*s, "create", "/api/v1/namespaces/prod/configmaps?fieldManager=kubectl-create", ref("", "configmaps", "", "prod", ""), 201, nil),
			"application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"prod","resourceVersion":"7","uid":"u-1","creationTimestamp":"2026-01-01T00:00:00Z","managedFields":[{"manager":"x"}],"labels":{"a":"b"}},"data":{"n":"1.50"}}`),
		withBody(call("r03", 2*s, "patch", "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl-patch", ref("apps", "deployments", "", "prod", "web"), 200, nil),
			"application/strategic-merge-patch+json", `{"spec":{"replicas":3}}`),
		withBody(call("r04", 3*s, "patch", "/apis/apps/v1/namespaces/prod/deployments/web/scale", ref("apps", "deployments", "scale", "prod", "web"), 200, nil),
			"application/json-patch+json", `[{"op":"replace","path":"/metadata/namespace","value":"prod"}]`),
		call("r05", 4*s, "create", "/api/v1/namespaces/prod/secrets", ref("", "secrets", "", "prod", ""), 201,
			map[string]string{AnnotationBodyOmit: "secret values are not recorded"}),
		call("r06", 5*s, "delete", "/apis/apps/v1/namespaces/prod/deployments/db", ref("apps", "deployments", "", "prod", "db"), 403,
			map[string]string{AnnotationDecision: "deny", AnnotationRule: "no-prod-deletes"}),
		call("r07", 6*s, "create", "/api/v1/namespaces/prod/pods/web-0/exec?command=sh", ref("", "pods", "exec", "prod", "web-0"), 101, nil),
		withBody(call("r08", 7*s, "update", "/api/v1/namespaces/prod/configmaps/cfg", ref("", "configmaps", "", "prod", "cfg"), 200, nil),
			"application/json", `{"metadata":{"name":"cfg","namespace":"prod","resourceVersion":"8"},"data":{"n":"2"}}`),
		withBody(call("r09", 8*s, "delete", "/api/v1/namespaces/prod/pods/web-0?gracePeriodSeconds=0", ref("", "pods", "", "prod", "web-0"), 200, nil),
			"application/json", `{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"u-2"},"propagationPolicy":"Background"}`),
		withBody(call("r10", 9*s, "patch", "/api/v1/namespaces/prod/configmaps/cfg", ref("", "configmaps", "", "prod", "cfg"), 200, nil),
			"", `{"data":{"n":"3"}}`),
		withBody(call("r11", 10*s, "create", "/api/v1/namespaces", ref("", "namespaces", "", "", ""), 201, nil),
			"application/json", `{"metadata":{"name":"prod"}}`),
		call("r12", 11*s, "delete", "/api/v1/namespaces/prod/configmaps/cfg?dryRun=All", ref("", "configmaps", "", "prod", "cfg"), 200, nil),
		call("r13", 12*s, "create", "/apis/kubegate.dev/approve", nil, 200, nil),
		call("r14", 13*s, "watch", "/api/v1/namespaces/prod/pods?watch=true", ref("", "pods", "", "prod", ""), 200, nil),
	)
	events, err := SelectSession(path, SessionSelector{Credential: credA})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// received is one request the target server got.
type received struct {
	Method, URI, ContentType, Body string
}

// target is an API server stand-in that records what it receives.
func target(t *testing.T) (*rest.Config, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), string(body)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/namespaces"):
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"namespaces \"sandbox\" already exists","reason":"AlreadyExists","code":409}`)
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"kind":"ConfigMap"}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL}, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func TestReissueDryRunIntoSandbox(t *testing.T) {
	events := mutatingSession(t)
	cfg, got := target(t)
	results, err := Reissue(context.Background(), cfg, events, ReissueOptions{DryRun: true, NamespaceMap: map[string]string{"prod": "sandbox"}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range results {
		lines = append(lines, r.AuditID+" "+r.String())
	}
	wantLines := []string{
		"r02 POST /api/v1/namespaces/sandbox/configmaps?dryRun=All&fieldManager=kubectl-create: 201 Created",
		"r03 PATCH /apis/apps/v1/namespaces/sandbox/deployments/web?dryRun=All&fieldManager=kubectl-patch: 200 OK",
		"r04 PATCH /apis/apps/v1/namespaces/sandbox/deployments/web/scale?dryRun=All: 200 OK",
		"r05 POST /api/v1/namespaces/prod/secrets: skipped: body not recorded (secret values are not recorded)",
		"r06 DELETE /apis/apps/v1/namespaces/prod/deployments/db: skipped: recorded response was 403 (deny by rule no-prod-deletes)",
		"r07 POST /api/v1/namespaces/prod/pods/web-0/exec?command=sh: skipped: stream session (pods/exec)",
		"r08 PUT /api/v1/namespaces/sandbox/configmaps/cfg?dryRun=All: 200 OK",
		"r09 DELETE /api/v1/namespaces/sandbox/pods/web-0?dryRun=All&gracePeriodSeconds=0: 200 OK",
		"r10 PATCH /api/v1/namespaces/prod/configmaps/cfg: skipped: patch type not recorded",
		`r11 POST /api/v1/namespaces?dryRun=All: 409 namespaces "sandbox" already exists`,
		"r12 DELETE /api/v1/namespaces/sandbox/configmaps/cfg?dryRun=All: 200 OK",
		"r13 POST /apis/kubegate.dev/approve: skipped: not a resource call",
	}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}

	want := []received{
		{"POST", "/api/v1/namespaces/sandbox/configmaps?dryRun=All&fieldManager=kubectl-create", "application/json",
			`{"apiVersion":"v1","data":{"n":"1.50"},"kind":"ConfigMap","metadata":{"labels":{"a":"b"},"name":"cfg","namespace":"sandbox"}}`},
		{"PATCH", "/apis/apps/v1/namespaces/sandbox/deployments/web?dryRun=All&fieldManager=kubectl-patch", "application/strategic-merge-patch+json", `{"spec":{"replicas":3}}`},
		{"PATCH", "/apis/apps/v1/namespaces/sandbox/deployments/web/scale?dryRun=All", "application/json-patch+json", `[{"op":"replace","path":"/metadata/namespace","value":"prod"}]`},
		{"PUT", "/api/v1/namespaces/sandbox/configmaps/cfg?dryRun=All", "application/json", `{"data":{"n":"2"},"metadata":{"name":"cfg","namespace":"sandbox"}}`},
		{"DELETE", "/api/v1/namespaces/sandbox/pods/web-0?dryRun=All&gracePeriodSeconds=0", "application/json", `{"apiVersion":"v1","kind":"DeleteOptions","propagationPolicy":"Background"}`},
		{"POST", "/api/v1/namespaces?dryRun=All", "application/json", `{"metadata":{"name":"sandbox"}}`},
		{"DELETE", "/api/v1/namespaces/sandbox/configmaps/cfg?dryRun=All", "", ""},
	}
	if g := got(); !reflect.DeepEqual(g, want) {
		t.Errorf("the target received:\n%s\nwant:\n%s", dump(g), dump(want))
	}
}

func dump(rs []received) string {
	var b strings.Builder
	for _, r := range rs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestReissueAsRecorded sends the calls unchanged but for the metadata a
// cluster assigns: the recorded dryRun stays, bodies that need no change
// go byte for byte.
func TestReissueAsRecorded(t *testing.T) {
	events := mutatingSession(t)
	cfg, got := target(t)
	if _, err := Reissue(context.Background(), cfg, events, ReissueOptions{}); err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range got() {
		uris = append(uris, r.Method+" "+r.URI)
		if strings.Contains(r.URI, "/scale") && r.Body != `[{"op":"replace","path":"/metadata/namespace","value":"prod"}]` {
			t.Errorf("json patch changed: %s", r.Body)
		}
		if strings.HasSuffix(r.URI, "fieldManager=kubectl-create") && strings.Contains(r.Body, "resourceVersion") {
			t.Errorf("create body keeps server-owned metadata: %s", r.Body)
		}
	}
	want := []string{
		"POST /api/v1/namespaces/prod/configmaps?fieldManager=kubectl-create",
		"PATCH /apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl-patch",
		"PATCH /apis/apps/v1/namespaces/prod/deployments/web/scale",
		"PUT /api/v1/namespaces/prod/configmaps/cfg",
		"DELETE /api/v1/namespaces/prod/pods/web-0?gracePeriodSeconds=0",
		"POST /api/v1/namespaces",
		"DELETE /api/v1/namespaces/prod/configmaps/cfg?dryRun=All",
	}
	if !reflect.DeepEqual(uris, want) {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(uris, "\n"), strings.Join(want, "\n"))
	}
}

func TestReissueStopsOnTransportError(t *testing.T) {
	events := mutatingSession(t)
	cfg, _ := target(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results, err := Reissue(ctx, cfg, events, ReissueOptions{})
	if err == nil || !strings.Contains(err.Error(), "POST /api/v1/namespaces/prod/configmaps") || len(results) != 0 {
		t.Errorf("Reissue with a cancelled context = %v, %v", results, err)
	}
}
