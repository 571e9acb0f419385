package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
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
