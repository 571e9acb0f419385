package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	kgateway "github.com/kubegate/kubegate/gateway"
)

// TestGatewayKillsLiveSession lists a live exec session on the admin
// endpoint, kills it, and checks the agent's kubectl says why.
func TestGatewayKillsLiveSession(t *testing.T) {
	g := gateway(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			marker := "kill-me-" + proto.name
			cmd := kubectlCmd(ctx, g.agentKubeconfig, proto, "exec", "-i", "toolbox", "--", "sh", "-c", "echo "+marker+"; cat")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			out, stderr := newLockedBuffer(), newLockedBuffer()
			cmd.Stdout, cmd.Stderr = out, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitUntil(ctx, func() bool { return strings.Contains(out.String(), marker) }) {
				t.Fatalf("session never started; stderr:\n%s", stderr.String())
			}
			var id string
			if !waitUntil(ctx, func() bool {
				resp, err := http.Get(g.adminURL + "/sessions")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				var live []kgateway.LiveSession
				if json.NewDecoder(resp.Body).Decode(&live) != nil {
					return false
				}
				for _, s := range live {
					if strings.Contains(strings.Join(s.Command, " "), marker) && s.User == "agent@kubegate.test" && s.Kind == "exec" {
						id = s.ID
						return true
					}
				}
				return false
			}) {
				t.Fatal("the session never showed in /sessions")
			}
			resp, err := http.Post(g.adminURL+"/sessions/"+id+"/kill?reason=policy+review", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("kill: %s", resp.Status)
			}
			err = cmd.Wait()
			if err == nil {
				t.Error("kubectl exec exited cleanly after its session was killed")
			}
			if !strings.Contains(stderr.String(), "policy review") {
				t.Errorf("kubectl does not say why the session ended:\n%s", userOutput(stderr.String()))
			}
		})
	}
}
