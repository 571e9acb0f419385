package audit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestAsciinemaCat plays a recording with the real asciinema (Debian's
// 2.2, which reads v2): what `asciinema cat` prints must be the "o" text.
func TestAsciinemaCat(t *testing.T) {
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		t.Skip("asciinema is not installed (Debian package asciinema; `make deps` installs it)")
	}
	r, _ := record(t, RecordingConfig{
		Width: 100, Height: 30, Command: []string{"sh", "-c", "ls -l 'a b'"}, Title: "kubectl exec dev/toolbox -- sh",
		Meta: map[string]string{"user": "alice", "namespace": "dev", "pod": "toolbox", "tty": "true"},
	})
	r.Output([]byte("\x1b[1;32m$\x1b[0m "))
	r.Input([]byte("ls\r"))
	r.Output([]byte("ls\r\nfile \"q\" \\ tab\there\r\nh\xc3"))
	r.Output([]byte("\xa9llo w\xf0\x9f\x98"))
	r.ErrorOutput([]byte("ls: cannot access 'x': No such file\r\n"))
	r.Resize(120, 40)
	r.Output([]byte("\x80 bad \xff\xfe\x00 nul \u2028 sep\r\n"))
	r.Output([]byte("\x1b]0;title\x07\x1b[?25l"))
	r.Output([]byte("cut at the end \xe2\x82"))
	sum := closeRecording(t, r)
	want := readCast(t, sum.Path).Output()

	// asciinema cat puts /dev/tty in raw mode, so it needs a controlling
	// terminal; its output goes to a pipe, untouched by the terminal.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "cat", sum.Path)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "ASCIINEMA_CONFIG_HOME="+home, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, stderr.Bytes())
	}
	if stdout.String() != want {
		t.Errorf("asciinema cat printed\n%q\nwant\n%q\n(stderr %q)", stdout.Bytes(), want, stderr.Bytes())
	}
	if stdout.Len() == 0 {
		t.Error("asciinema cat printed nothing")
	}
}
