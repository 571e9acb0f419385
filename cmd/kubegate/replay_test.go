package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/audit"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// instantClock lets every wait pass at once.
type instantClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *instantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *instantClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

var day = time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)

// recordSession writes a recording with the real writer; output chunks
// come a second apart.
func recordSession(t *testing.T, dir, id, user, pod string, start time.Time, output ...string) string {
	t.Helper()
	now := start
	r, err := audit.NewRecording(audit.RecordingConfig{
		Dir: dir, SessionID: id, Command: []string{"sh"}, FlushInterval: time.Hour,
		Now: func() time.Time { return now },
		Meta: map[string]string{"session_id": id, "audit_id": id, "kind": "exec", "user": user,
			"namespace": "dev", "pod": pod, "container": "main", "tty": "true", "stdin": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range output {
		now = now.Add(time.Second)
		if err := r.Output([]byte(o)); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	return sum.Path
}

func runReplayTest(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = replayCommand(context.Background(), args, replayIO{
		stdin: strings.NewReader("q"), stdout: &out, stderr: &errOut, clock: &instantClock{now: day},
	})
	return out.String(), errOut.String(), err
}

func TestReplayPlaysARecording(t *testing.T) {
	dir := t.TempDir()
	path := recordSession(t, dir, "sess-1234", "agent@kubegate.test", "toolbox", day, "$ ", "ls\r\n", "a  b\r\n")
	want := "$ ls\r\na  b\r\n"
	for name, args := range map[string][]string{
		"by id":          {"--dir", dir, "sess-1234"},
		"by prefix":      {"sess-12", "--dir", dir, "--speed", "4", "--idle-limit", "1s"},
		"by file":        {path},
		"from env":       {"sess-1234"},
		"from --config":  {"--config", writeConfig(t, filepath.Join(t.TempDir(), "audit.log"), dir), "sess-1234"},
		"from $KUBEGATE": {"sess-1234"},
	} {
		t.Run(name, func(t *testing.T) {
			switch name {
			case "from env":
				t.Setenv("KUBEGATE_RECORDINGS", dir)
			case "from $KUBEGATE":
				t.Setenv("KUBEGATE_CONFIG", writeConfig(t, filepath.Join(t.TempDir(), "audit.log"), dir))
			}
			out, banner, err := runReplayTest(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if out != want {
				t.Errorf("output %q, want %q", out, want)
			}
			if !strings.Contains(banner, "sess-1234: agent@kubegate.test exec dev/toolbox -- sh") {
				t.Errorf("banner %q", banner)
			}
		})
	}
}

func TestReplayTruncatedRecording(t *testing.T) {
	dir := t.TempDir()
	path := recordSession(t, dir, "cut", "agent@kubegate.test", "toolbox", day, "one\r\n", "two\r\n", "three\r\n")
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	out, _, err := runReplayTest(t, path)
	if err == nil || err.Error() != "replay stopped at line 4 (2.0s): recording is truncated" {
		t.Errorf("error %v", err)
	}
	if out != "one\r\ntwo\r\n" {
		t.Errorf("output %q", out)
	}
}

// writeConfig writes a gateway configuration naming an audit file and a
// recordings directory.
func writeConfig(t *testing.T, auditFile, recordings string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubegate.yaml")
	yaml := fmt.Sprintf("tls: {certFile: a, keyFile: b}\nidentity: {issuers: [{url: https://x, audience: k}]}\naudit: {file: {path: %q}, recordings: {dir: %q}}\n", auditFile, recordings)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeAudit writes events with the real file sink.
func writeAudit(t *testing.T, events ...*auditv1.Event) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.NewFileSink(audit.FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := sink.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

const cred = "sha256:00112233aabbccdd"

func auditEvent(id string, at time.Duration, verb, uri string, ref *auditv1.ObjectReference, code int32, body string, ann ...string) *auditv1.Event {
	ev := &auditv1.Event{
		TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:    auditv1.LevelRequest, AuditID: types.UID(id), Stage: auditv1.StageResponseComplete,
		RequestURI: uri, Verb: verb, ObjectRef: ref, ResponseStatus: &metav1.Status{Code: code},
		RequestReceivedTimestamp: metav1.NewMicroTime(day.Add(at)),
		Annotations: map[string]string{
			audit.AnnotationCredential: cred, audit.AnnotationDecision: "allow", audit.AnnotationRule: "agents",
		},
	}
	ev.User.Username = "agent@kubegate.test"
	if body != "" {
		ev.RequestObject = &runtime.Unknown{Raw: []byte(body)}
	}
	for i := 0; i+1 < len(ann); i += 2 {
		ev.Annotations[ann[i]] = ann[i+1]
	}
	return ev
}

func agentSession(t *testing.T) string {
	return writeAudit(t,
		auditEvent("e1", 0, "get", "/api/v1/namespaces/prod/configmaps/cfg", &auditv1.ObjectReference{Resource: "configmaps", Namespace: "prod", Name: "cfg"}, 404, ""),
		auditEvent("e2", 1500*time.Millisecond, "create", "/api/v1/namespaces/prod/configmaps", &auditv1.ObjectReference{Resource: "configmaps", Namespace: "prod"}, 201,
			`{"metadata":{"name":"cfg","namespace":"prod","uid":"x"}}`, audit.AnnotationContentType, "application/json"),
		auditEvent("e3", 2*time.Second, "delete", "/apis/apps/v1/namespaces/prod/deployments/web", &auditv1.ObjectReference{APIGroup: "apps", Resource: "deployments", Namespace: "prod", Name: "web"}, 403, "",
			audit.AnnotationDecision, "deny", audit.AnnotationRule, "no-prod-deletes"),
	)
}

func TestReplayAPI(t *testing.T) {
	path := agentSession(t)
	want := `OFFSET   VERB    RESOURCE          OBJECT    DECISION  CODE  NOTE                  AUDIT-ID
+0.000s  get     configmaps        prod/cfg  allow     404   -                     e1
+1.500s  create  configmaps        prod/cfg  allow     201   -                     e2
+2.000s  delete  apps/deployments  prod/web  deny      403   rule=no-prod-deletes  e3
`
	for name, args := range map[string][]string{
		"credential":        {"--api", "--audit-file", path, cred},
		"credential prefix": {"--api", "00112233", "--audit-file", path},
		"range":             {"--api", "--audit-file", path, "e1..e3"},
		"user":              {"--api", "--audit-file", path, "--user", "agent@kubegate.test", "--since", "2026-05-01T09:00:00Z"},
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := runReplayTest(t, args...)
			if err != nil || out != want {
				t.Errorf("err %v, output:\n%s\nwant:\n%s", err, out, want)
			}
		})
	}
	t.Setenv("KUBEGATE_AUDIT_FILE", path)
	if out, _, err := runReplayTest(t, "--api", "e2..e2"); err != nil || !strings.Contains(out, "e2") || strings.Contains(out, "e1") {
		t.Errorf("from $KUBEGATE_AUDIT_FILE: %v\n%s", err, out)
	}
}

func TestReplayAgainst(t *testing.T) {
	path := agentSession(t)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type")+" "+string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "sandbox.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: sandbox, cluster: {server: %q}}]
users: [{name: me, user: {token: t}}]
contexts: [{name: sandbox, context: {cluster: sandbox, user: me}}, {name: other, context: {cluster: nowhere, user: me}}]
current-context: other
`, srv.URL)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runReplayTest(t, "--against", kubeconfig, "--context", "sandbox", "--dry-run=server",
		"--namespace-map", "prod=sandbox", "--audit-file", path, cred)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := "POST /api/v1/namespaces/sandbox/configmaps?dryRun=All: 201 Created\n" +
		"DELETE /apis/apps/v1/namespaces/prod/deployments/web: skipped: recorded response was 403 (deny by rule no-prod-deletes)\n"
	if out != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out, wantOut)
	}
	want := `POST /api/v1/namespaces/sandbox/configmaps?dryRun=All application/json {"metadata":{"name":"cfg","namespace":"sandbox"}}`
	if len(got) != 1 || got[0] != want {
		t.Errorf("the sandbox received %q, want %q", got, want)
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBEGATE_RECORDINGS", "")
	t.Setenv("KUBEGATE_AUDIT_FILE", "")
	t.Setenv("KUBEGATE_CONFIG", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "usage"},
		{[]string{"a", "b"}, "usage"},
		{[]string{"sess"}, "no recordings directory"},
		{[]string{"--dir", dir, "sess"}, "recording not found"},
		{[]string{"--api", "--against", "k", cred}, "do not go together"},
		{[]string{"--api", cred}, "no audit file"},
		{[]string{"--api"}, "--user"},
		{[]string{"--api", "toolbox"}, "neither a credential id"},
		{[]string{"--api", "--audit-file", filepath.Join(dir, "none.log"), cred}, "no such file"},
		{[]string{"--against", "k", "--dry-run=client", "--audit-file", agentSession(t), cred}, "want server or none"},
		{[]string{"--namespace-map", "prod", "x"}, "want FROM=TO"},
		{[]string{"--api", "--user", "u", "--since", "yesterday", "--audit-file", "x"}, "RFC3339"},
		{[]string{"--config", filepath.Join(dir, "none.yaml"), "sess"}, "reading config"},
	} {
		_, _, err := runReplayTest(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("replay %q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2h":                   now.Add(-2 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-04-30T08:00:00Z": time.Date(2026, 4, 30, 8, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-2h", "yesterday"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) accepted", in)
		}
	}
}

func TestCRLFWriter(t *testing.T) {
	var b bytes.Buffer
	w := &crlfWriter{w: &b}
	for _, s := range []string{"a\nb\r\n", "\n", "c\r", "\nd\n"} {
		if n, err := io.WriteString(w, s); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if b.String() != "a\r\nb\r\n\r\nc\r\nd\r\n" {
		t.Errorf("got %q", b.String())
	}
}
