package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/kubegate/kubegate/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// TestGatewayStreams runs every streaming case through kubegate as the
// agent, over WebSocket and SPDY, with the acceptance sizes.
func TestGatewayStreams(t *testing.T) {
	g := gateway(t)
	runStreamCases(t, g.agentKubeconfig, 5<<20, 20<<20, 100<<20)
}

// auditEvents reads every event in the audit file.
func auditEvents(t *testing.T, path string) []auditv1.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []auditv1.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit line is not an Event: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// sessionEvent finds the audit event of the exec whose command contains
// marker. kubectl may exit before kubegate has written the event (the event
// follows the session's end), so it waits for it.
func sessionEvent(t *testing.T, path, marker string) auditv1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var found *auditv1.Event
	waitUntil(ctx, func() bool {
		for _, ev := range auditEvents(t, path) {
			uri, _ := url.QueryUnescape(ev.RequestURI)
			if strings.Contains(uri, marker) && ev.ObjectRef != nil && ev.ObjectRef.Subresource == "exec" {
				found = &ev
				return true
			}
		}
		return false
	})
	if found == nil {
		t.Fatalf("no audit event for the exec with %q", marker)
	}
	return *found
}

// TestGatewayRecordsTTYSessions checks that a terminal session's recording
// holds its input, its output and the resize, in the order they crossed.
func TestGatewayRecordsTTYSessions(t *testing.T) {
	g := gateway(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			testExecTTY(t, g.agentKubeconfig, proto)
			ev := sessionEvent(t, g.auditPath, "tty-"+proto.name)
			f, err := os.Open(ev.Annotations["kubegate.dev/recording"])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cast, err := audit.ParseCast(f)
			if err != nil {
				t.Fatal(err)
			}
			// Chunks split and merge freely: look at what had crossed by each event.
			resizeAt, inputAt, outputAt := -1, -1, -1
			var typed, shown strings.Builder
			for i, e := range cast.Events {
				switch e.Code {
				case "r":
					if e.Data == "133x42" && resizeAt < 0 {
						resizeAt = i
					}
				case "i":
					typed.WriteString(e.Data)
					if strings.Contains(typed.String(), "stty size") && inputAt < 0 {
						inputAt = i
					}
				case "o":
					shown.WriteString(e.Data)
					if strings.Contains(shown.String(), "SZ42x133") && outputAt < 0 {
						outputAt = i
					}
				}
			}
			if resizeAt < 0 || inputAt < 0 || outputAt < 0 {
				t.Fatalf("recording lacks the resize (%d), the typed command (%d) or its output (%d): %+v", resizeAt, inputAt, outputAt, cast.Events)
			}
			if !(inputAt < outputAt && resizeAt < outputAt) {
				t.Errorf("events out of order: input %d, resize %d, output showing the new size %d", inputAt, resizeAt, outputAt)
			}
			if ev.Annotations["kubegate.dev/session-exit-code"] != "5" {
				t.Errorf("exit code annotation %q, want 5", ev.Annotations["kubegate.dev/session-exit-code"])
			}
		})
	}
}

// TestGatewayRecordsSessions checks an exec's audit event and recording:
// exit code, bytes, the recording's sha256, and that `asciinema cat` shows
// what the client printed.
func TestGatewayRecordsSessions(t *testing.T) {
	g := gateway(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			marker := "rec-" + proto.name
			r := kc(t, g.agentKubeconfig, nil, "exec", "toolbox", "--", "sh", "-c", "echo out-"+marker+"; echo err-"+marker+" >&2; exit 7")
			if r.code != 7 {
				t.Fatalf("exit %d: %s", r.code, userOutput(r.stderr))
			}
			ev := sessionEvent(t, g.auditPath, marker)
			ann := ev.Annotations
			if ann["kubegate.dev/session-exit-code"] != "7" || ev.Verb != "create" || ann["kubegate.dev/decision"] != "allow" {
				t.Errorf("exec event: verb %s annotations %v", ev.Verb, ann)
			}
			// Whatever the client spoke, kubegate speaks WebSocket v5 to the
			// apiserver (SPDY only where that is refused).
			if got := ann["kubegate.dev/session-upstream-protocol"]; got != "websocket v5.channel.k8s.io" {
				t.Errorf("upstream protocol %q, want websocket v5.channel.k8s.io", got)
			}
			path := ann["kubegate.dev/recording"]
			cast, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("recording %q: %v", path, err)
			}
			sum := sha256.Sum256(cast)
			if hex.EncodeToString(sum[:]) != ann["kubegate.dev/recording-sha256"] {
				t.Errorf("recording sha256 differs from the audit event's")
			}
			header := strings.SplitN(string(cast), "\n", 2)[0]
			for _, want := range []string{`"version":2`, ev.User.Username, `"toolbox"`, string(ev.AuditID)} {
				if !strings.Contains(header, want) {
					t.Errorf("recording header lacks %s: %s", want, header)
				}
			}
			if _, err := exec.LookPath("asciinema"); err != nil {
				t.Fatalf("asciinema is not installed (make deps installs it): %v", err)
			}
			out := asciinemaCat(t, path)
			for _, want := range []string{"out-" + marker + "\n", "err-" + marker + "\n"} {
				if !strings.Contains(strings.ReplaceAll(string(out), "\r\n", "\n"), want) {
					t.Errorf("asciinema cat shows %q, lacking %q", out, want)
				}
			}
		})
	}
}

// asciinemaCat runs Debian's `asciinema cat`, which wants a terminal, under
// a pseudo-terminal and returns what it printed.
func asciinemaCat(t *testing.T, path string) []byte {
	t.Helper()
	cmd := exec.Command("asciinema", "cat", path)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("asciinema cat: %v", err)
	}
	defer tty.Close()
	out, _ := io.ReadAll(tty) // ends with EIO once asciinema exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("asciinema cat: %v: %s", err, out)
	}
	return out
}

// TestGatewayStreamPolicy checks exec decisions on the command: a denied
// exec gets the same refusal over WebSocket and SPDY (kubectl retries a
// refused WebSocket over SPDY), and the one allowed command runs.
func TestGatewayStreamPolicy(t *testing.T) {
	g := gateway(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			r := kc2(t, g.adminKubeconfig, proto, "-n", "prod", "exec", "-i", "toolbox", "--", "sh")
			if r.code == 0 || !strings.Contains(r.stderr, `denied by rule "no-other-exec-in-prod": only 'cat /etc/os-release' may run in prod`) {
				t.Errorf("shell in prod: exit %d: %s", r.code, userOutput(r.stderr))
			}
			r = kc2(t, g.adminKubeconfig, proto, "-n", "prod", "exec", "toolbox", "--", "cat", "/etc/os-release")
			if r.code != 0 || !strings.Contains(r.stdout, "ID=") {
				t.Errorf("cat /etc/os-release in prod: exit %d: %q %s", r.code, r.stdout, userOutput(r.stderr))
			}
		})
	}
}

// kc2 runs kubectl with a protocol choice.
func kc2(t *testing.T, kubeconfig string, proto protocol, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return runKubectl(t, ctx, kubeconfig, proto, nil, args...)
}
