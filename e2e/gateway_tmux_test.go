package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/audit"
)

// TestGatewayExecTTYInTmux drives `kubectl exec -it` through kubegate in a
// real terminal multiplexer, as a person would: typed commands, their
// output, and a window resize; then checks the recording holds i, o and r
// events in the order they happened.
func TestGatewayExecTTYInTmux(t *testing.T) {
	g := gateway(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			marker := "tmux-" + proto.name
			kubectl := fmt.Sprintf("env KUBECONFIG=%s %s %s exec -it toolbox -- sh -c 'exec sh' %s; echo kubectl-exit=$?; sleep 600",
				g.agentKubeconfig, strings.Join(proto.env, " "), kubectlBin(), marker)
			term := startTmux(t, ctx, proto.name, kubectl)
			tmux, screen := term.run, term.screen
			sizeRe := regexp.MustCompile(`SZ(\d+)x(\d+)`)
			askSize := func() string {
				before := len(sizeRe.FindAllString(screen(), -1))
				tmux("send-keys", "-t", "e2e", `printf 'SZ%s\n' "$(stty size | tr ' ' x)"`, "Enter")
				var last string
				if !waitUntil(ctx, func() bool {
					all := sizeRe.FindAllString(screen(), -1)
					if len(all) > before {
						last = all[len(all)-1]
						return true
					}
					return false
				}) {
					t.Fatalf("the pod never printed its size; screen:\n%s", screen())
				}
				return last
			}
			if got := askSize(); got != "SZ30x100" {
				t.Fatalf("initial size %s, want SZ30x100; screen:\n%s", got, screen())
			}
			tmux("resize-window", "-t", "e2e", "-x", "133", "-y", "42")
			if !waitUntil(ctx, func() bool { return askSize() == "SZ42x133" }) {
				t.Fatalf("the resize never reached the pod; screen:\n%s", screen())
			}
			tmux("send-keys", "-t", "e2e", "echo typed-$((6*7))", "Enter")
			if !waitUntil(ctx, func() bool { return strings.Contains(screen(), "typed-42") }) {
				t.Fatalf("typed command's output never showed; screen:\n%s", screen())
			}
			tmux("send-keys", "-t", "e2e", "exit 4", "Enter")
			if !waitUntil(ctx, func() bool { return strings.Contains(screen(), "kubectl-exit=4") }) {
				t.Fatalf("kubectl did not exit with 4; screen:\n%s", screen())
			}

			ev := sessionEvent(t, g.auditPath, marker)
			f, err := os.Open(ev.Annotations["kubegate.dev/recording"])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cast, err := audit.ParseCast(f)
			if err != nil {
				t.Fatal(err)
			}
			if cast.Header.Width != 100 || cast.Header.Height != 30 {
				t.Errorf("recording header size %dx%d, want the terminal's 100x30", cast.Header.Width, cast.Header.Height)
			}
			at := map[string]int{}
			first := func(key string, ok bool, i int) {
				if _, seen := at[key]; ok && !seen {
					at[key] = i
				}
			}
			// Chunks split and merge freely: look at what had crossed by each event.
			var typed, shown strings.Builder
			for i, e := range cast.Events {
				switch e.Code {
				case "i":
					typed.WriteString(e.Data)
					first("typed", strings.Contains(typed.String(), "echo typed-$((6*7))"), i)
				case "o":
					shown.WriteString(e.Data)
					first("output", strings.Contains(shown.String(), "\ntyped-42\r"), i) // the result line, not the echoed command
				case "r":
					first("resize", e.Data == "133x42", i)
				}
			}
			for _, k := range []string{"typed", "resize", "output"} {
				if _, ok := at[k]; !ok {
					t.Fatalf("recording lacks the %s event; events: %+v", k, cast.Events)
				}
			}
			if !(at["resize"] < at["typed"] && at["typed"] < at["output"]) {
				t.Errorf("events out of order: resize %d, typed %d, output %d", at["resize"], at["typed"], at["output"])
			}
			if ev.Annotations["kubegate.dev/session-exit-code"] != "4" {
				t.Errorf("exit code annotation %q, want 4", ev.Annotations["kubegate.dev/session-exit-code"])
			}
		})
	}
}
