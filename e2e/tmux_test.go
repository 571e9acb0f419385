package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// tmuxSession is a command running in a real terminal: a detached tmux
// server of its own, 100x30.
type tmuxSession struct {
	t    *testing.T
	ctx  context.Context
	sock string
}

// startTmux runs command in a new tmux server named after name; the server
// is killed when the test ends.
func startTmux(t *testing.T, ctx context.Context, name, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is not installed (make deps installs it): %v", err)
	}
	s := &tmuxSession{t: t, ctx: ctx, sock: fmt.Sprintf("kubegate-e2e-%d-%s", os.Getpid(), name)}
	s.run("new-session", "-d", "-s", "e2e", "-x", "100", "-y", "30", command)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.sock, "kill-server").Run() })
	return s
}

// run runs a tmux command against the session's server.
func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.CommandContext(s.ctx, "tmux", append([]string{"-L", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// screen is what the terminal shows, with 200 lines of scrollback.
func (s *tmuxSession) screen() string {
	s.t.Helper()
	return s.run("capture-pane", "-p", "-J", "-S", "-200", "-t", "e2e")
}

// typeLine types text and Enter.
func (s *tmuxSession) typeLine(text string) {
	s.t.Helper()
	s.run("send-keys", "-t", "e2e", text, "Enter")
}
