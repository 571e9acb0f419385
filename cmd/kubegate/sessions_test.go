package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// captureStdout runs f and returns what it printed.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	ferr := f()
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), ferr
}

func TestSessionsCommand(t *testing.T) {
	var killed string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `[{"id":"s-1","user":"agent@kubegate.test","kind":"exec","namespace":"dev","pod":"toolbox","command":["sh"],"tty":true,"protocol":"websocket","started":"2026-01-01T00:00:00Z"}]`)
	})
	mux.HandleFunc("POST /sessions/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "s-1" {
			http.Error(w, "no live session", http.StatusNotFound)
			return
		}
		killed = r.URL.Query().Get("reason")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	out, err := captureStdout(t, func() error { return runSessions(context.Background(), []string{"--live", "--admin", srv.URL}) })
	if err != nil || !strings.Contains(out, "s-1") || !strings.Contains(out, "agent@kubegate.test") || !strings.Contains(out, "dev/toolbox") {
		t.Errorf("sessions --live: %v\n%s", err, out)
	}
	out, err = captureStdout(t, func() error {
		return runSessions(context.Background(), []string{"kill", "s-1", "--reason", "policy review", "--admin", srv.URL})
	})
	if err != nil || killed != "policy review" || !strings.Contains(out, "killed") {
		t.Errorf("sessions kill: %v, reason %q, output %q", err, killed, out)
	}
	if _, err := captureStdout(t, func() error { return runSessions(context.Background(), []string{"kill", "nope", "--admin", srv.URL}) }); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("kill of an unknown session: %v", err)
	}
}

func TestSessionsListsRecordings(t *testing.T) {
	dir := t.TempDir()
	recordSession(t, dir, "s-1", "alice", "toolbox", day, "hi\r\n", "bye\r\n")
	recordSession(t, dir, "s-2", "bob", "web-0", day.Add(time.Hour), "x")
	cut := recordSession(t, dir, "s-3", "alice", "web-0", day.Add(26*time.Hour), "one\r\n", "two\r\n")
	st, _ := os.Stat(cut)
	if err := os.Truncate(cut, st.Size()-2); err != nil {
		t.Fatal(err)
	}
	auditFile := writeAudit(t, auditEvent("s-1", 0, "create", "/api/v1/namespaces/dev/pods/toolbox/exec", &auditv1.ObjectReference{Resource: "pods", Subresource: "exec", Namespace: "dev", Name: "toolbox"}, 101, "",
		audit.AnnotationSessionExitCode, "7"))

	out, err := captureStdout(t, func() error {
		return runSessions(context.Background(), []string{"--dir", dir, "--audit-file", auditFile})
	})
	want := `ID   START                 DURATION  USER   NAMESPACE/POD  CONTAINER  COMMAND  EXIT
s-1  2026-05-01T09:30:00Z  2s        alice  dev/toolbox    main       sh       7
s-2  2026-05-01T10:30:00Z  1s        bob    dev/web-0      main       sh       -
s-3  2026-05-02T11:30:00Z  1s        alice  dev/web-0      main       sh       truncated
`
	if err != nil || out != want {
		t.Errorf("sessions: %v\n%s\nwant:\n%s", err, out, want)
	}

	for name, tc := range map[string]struct {
		args []string
		ids  []string
	}{
		"user":        {[]string{"--user", "alice"}, []string{"s-1", "s-3"}},
		"pod":         {[]string{"--pod", "web-0", "-n", "dev"}, []string{"s-2", "s-3"}},
		"since":       {[]string{"--since", "2026-05-01T10:00:00Z"}, []string{"s-2", "s-3"}},
		"from config": {[]string{"--config", writeConfig(t, auditFile, dir), "--user", "bob"}, []string{"s-2"}},
	} {
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if name != "from config" {
				args = append(args, "--dir", dir)
			}
			out, err := captureStdout(t, func() error { return runSessions(context.Background(), args) })
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
				ids = append(ids, strings.Fields(line)[0])
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
				t.Errorf("ids %v, want %v\n%s", ids, tc.ids, out)
			}
		})
	}

	t.Setenv("KUBEGATE_RECORDINGS", "")
	t.Setenv("KUBEGATE_CONFIG", "")
	if _, err := captureStdout(t, func() error { return runSessions(context.Background(), nil) }); err == nil || !strings.Contains(err.Error(), "no recordings directory") {
		t.Errorf("sessions without a directory: %v", err)
	}
	if _, err := captureStdout(t, func() error { return runSessions(context.Background(), []string{"--since", "soon", "--dir", dir}) }); err == nil {
		t.Error("a bad --since is accepted")
	}
}
