package audit

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const (
	credA = "sha256:0123456789abcdef"
	credB = "sha256:0123ffff00000000"
	credC = "sha256:9999aaaa00000000"
)

// sessionLog is an audit log with one agent session (credential A), a
// second credential sharing A's first digits, and another agent, in the
// order the gateway writes them: an exec session's event comes when the
// session ends. It rotates after every few events.
func sessionLog(t *testing.T) string {
	t.Helper()
	other := call("c1", 500*time.Millisecond, "get", "/api/v1/namespaces/kube-system/secrets", &auditv1.ObjectReference{Resource: "secrets", Namespace: "kube-system"}, 403,
		map[string]string{AnnotationCredential: credC, AnnotationDecision: "deny", AnnotationRule: "no-secrets"})
	other.User = authnv1.UserInfo{Username: "other@kubegate.test"}
	return auditLog(t, 2048,
		call("a1", 0, "list", "/api/v1/namespaces/dev/pods?limit=500", &auditv1.ObjectReference{Resource: "pods", Namespace: "dev", APIVersion: "v1"}, 200, nil),
		other,
		call("a2", 1250*time.Millisecond, "create", "/api/v1/namespaces/dev/configmaps?fieldManager=kubectl-create", &auditv1.ObjectReference{Resource: "configmaps", Namespace: "dev", APIVersion: "v1"}, 201, nil),
		call("a3", 2*time.Second, "delete", "/apis/apps/v1/namespaces/prod/deployments/web", &auditv1.ObjectReference{APIGroup: "apps", Resource: "deployments", Namespace: "prod", Name: "web"}, 403,
			map[string]string{AnnotationDecision: "deny", AnnotationRule: "no-prod-deletes"}),
		call("a5", 4*time.Second, "get", "/version?timeout=32s", nil, 200, nil),
		call("a4", 3*time.Second, "create", "/api/v1/namespaces/dev/pods/toolbox/exec?command=sh&stdin=true&tty=true", &auditv1.ObjectReference{Resource: "pods", Subresource: "exec", Namespace: "dev", Name: "toolbox"}, 101,
			map[string]string{AnnotationSessionExitCode: "0", AnnotationEvent: "session.end"}),
		call("b1", 5*time.Second, "get", "/api/v1/nodes/n1", &auditv1.ObjectReference{Resource: "nodes", Name: "n1"}, 200, map[string]string{AnnotationCredential: credB}),
	)
}

func ids(events []*auditv1.Event) []string {
	var out []string
	for _, ev := range events {
		out = append(out, string(ev.AuditID))
	}
	return out
}

func TestAuditFilesInOrder(t *testing.T) {
	path := sessionLog(t)
	files, err := AuditFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 || files[len(files)-1] != path {
		t.Fatalf("files %v: want rotated files, then %s", files, path)
	}
	// A file beside them that is not a rotation is not read.
	if err := os.WriteFile(path+".bak", []byte("junk\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var all []string
	if err := ScanAuditEvents(path, func(ev *auditv1.Event) bool { all = append(all, string(ev.AuditID)); return true }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a1", "c1", "a2", "a3", "a5", "a4", "b1"}; !reflect.DeepEqual(all, want) {
		t.Errorf("events %v, want %v (file order)", all, want)
	}
}

func TestSelectSession(t *testing.T) {
	path := sessionLog(t)
	for _, tc := range []struct {
		name string
		sel  SessionSelector
		want []string
		err  string
	}{
		{name: "credential", sel: SessionSelector{Credential: credA}, want: []string{"a1", "a2", "a3", "a4", "a5"}},
		{name: "credential prefix", sel: SessionSelector{Credential: "0123456"}, want: []string{"a1", "a2", "a3", "a4", "a5"}},
		{name: "ambiguous prefix", sel: SessionSelector{Credential: "sha256:0123"}, err: "ambiguous: " + credA + ", " + credB},
		{name: "short prefix", sel: SessionSelector{Credential: "012"}, err: "at least 4"},
		{name: "unknown credential", sel: SessionSelector{Credential: "feedbeef"}, want: nil},
		{name: "range in file order", sel: SessionSelector{From: "c1", To: "a5"}, want: []string{"c1", "a2", "a3", "a5"}},
		{name: "range of one", sel: SessionSelector{From: "a3", To: "a3"}, want: []string{"a3"}},
		{name: "range and credential", sel: SessionSelector{From: "a1", To: "b1", Credential: credA}, want: []string{"a1", "a2", "a3", "a4", "a5"}},
		{name: "range backwards", sel: SessionSelector{From: "a5", To: "a1"}, err: "audit id a1 not found at or after a5"},
		{name: "range from nowhere", sel: SessionSelector{From: "zz", To: "a1"}, err: "audit id zz not found"},
		{name: "half a range", sel: SessionSelector{From: "a1"}, err: "both ends"},
		{name: "user since", sel: SessionSelector{User: "agent@kubegate.test", Since: t0.Add(2 * time.Second)}, want: []string{"a3", "a4", "a5", "b1"}},
		{name: "nothing", sel: SessionSelector{}, err: "no credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SelectSession(path, tc.sel)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tc.want) {
				t.Errorf("selected %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestParseSessionSelector(t *testing.T) {
	for in, want := range map[string]SessionSelector{
		credA:      {Credential: credA},
		"0123abcd": {Credential: "0123abcd"},
		"a1..b2":   {From: "a1", To: "b2"},
	} {
		if got, err := ParseSessionSelector(in); err != nil || got != want {
			t.Errorf("ParseSessionSelector(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a1..", "..b2", "sha256:XYZW", "toolbox", "abc"} {
		if _, err := ParseSessionSelector(in); err == nil {
			t.Errorf("ParseSessionSelector(%q) accepted", in)
		}
	}
}

func TestWriteTimeline(t *testing.T) {
	events, err := SelectSession(sessionLog(t), SessionSelector{Credential: credA})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteTimeline(&b, events); err != nil {
		t.Fatal(err)
	}
	want := `OFFSET   VERB    RESOURCE          OBJECT       DECISION  CODE  NOTE                  AUDIT-ID
+0.000s  list    pods              dev/*        allow     200   -                     a1
+1.250s  create  configmaps        dev/*        allow     201   -                     a2
+2.000s  delete  apps/deployments  prod/web     deny      403   rule=no-prod-deletes  a3
+3.000s  create  pods/exec         dev/toolbox  allow     101   exit=0                a4
+4.000s  get     /version          -            allow     200   -                     a5
`
	if b.String() != want {
		t.Errorf("timeline:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestScanAuditEventsDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	good := auditLog(t, 0, call("a1", 0, "get", "/version", nil, 200, nil))
	line, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// A line still being written at the end is passed over.
	if err := os.WriteFile(path, append(line, line[:20]...), 0o640); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := ScanAuditEvents(path, func(*auditv1.Event) bool { n++; return true }); err != nil || n != 1 {
		t.Errorf("cut last line: %d events, %v", n, err)
	}
	// A bad line in the middle is an error naming it.
	if err := os.WriteFile(path, append(append([]byte("{not json\n"), line...), line...), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := ScanAuditEvents(path, func(*auditv1.Event) bool { return true }); err == nil || !strings.Contains(err.Error(), path+" line 1") {
		t.Errorf("bad line: %v", err)
	}
	if err := ScanAuditEvents(filepath.Join(dir, "missing.log"), func(*auditv1.Event) bool { return true }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
