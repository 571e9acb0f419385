package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// attackPaths: tricks on the path, method and parameters meant to reach a
// delete, an exec or a Secret in prod while a deny rule matches. Every case
// is refused (by kubegate, or by the apiserver for a path it does not
// serve), and attackKit.checkVictims proves no delete got through.
func attackPaths(t *testing.T, k *attackKit) int {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	node, err := k.env.Client.CoreV1().Nodes().Get(ctx, "testnode", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeletPort := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	const cm = "/api/v1/namespaces/prod/configmaps/" + attackVictim
	const execQ = "?command=sh&command=-c&command=echo+$((6*7))-pwned&stdout=true&stderr=true"
	const ex = "/api/v1/namespaces/prod/pods/toolbox/exec" + execQ
	kubelet := func(p string) string { return "/api/v1/nodes/testnode/proxy/" + p }
	podKubelet := func(p string) string {
		return "/api/v1/namespaces/prod/pods/https:toolbox:" + itoa(int(kubeletPort)) + "/proxy/" + p
	}
	cases := []struct {
		name, method, path string
		hdr                http.Header
		body               string
		want               int
		// byKubegate: the refusal is kubegate's own Status.
		byKubegate bool
	}{
		{"control: plain delete is denied", "DELETE", cm, nil, "", 403, true},
		{"deletecollection is denied", "DELETE", "/api/v1/namespaces/prod/configmaps", nil, "", 403, true},
		{"dot segment", "DELETE", "/api/v1/namespaces/prod/configmaps/./" + attackVictim, nil, "", 400, true},
		{"dot-dot from dev", "DELETE", "/api/v1/namespaces/dev/../prod/configmaps/" + attackVictim, nil, "", 400, true},
		{"encoded dot-dot", "DELETE", "/api/v1/namespaces/dev/%2e%2e/prod/configmaps/" + attackVictim, nil, "", 400, true},
		{"encoded slash", "DELETE", "/api/v1/namespaces/prod%2Fconfigmaps%2F" + attackVictim, nil, "", 400, true},
		{"encoded letter", "DELETE", "/api/v1/namespaces/%70rod/configmaps/" + attackVictim, nil, "", 403, true},
		{"encoded backslash", "DELETE", "/api/v1/namespaces/prod/configmaps%5C" + attackVictim, nil, "", 400, true},
		{"doubled slash", "DELETE", "/api/v1/namespaces/prod//configmaps/" + attackVictim, nil, "", 400, true},
		{"leading doubled slash", "DELETE", "//api/v1/namespaces/prod/configmaps/" + attackVictim, nil, "", 400, true},
		{"trailing slash", "DELETE", cm + "/", nil, "", 400, true},
		{"upper-case namespace", "DELETE", "/api/v1/namespaces/PROD/configmaps/" + attackVictim, nil, "", 400, true},
		{"capitalised namespace to prod secrets", "GET", "/api/v1/namespaces/Prod/secrets/" + attackSecret, nil, "", 400, true},
		{"upper-case API prefix", "DELETE", "/API/v1/namespaces/prod/configmaps/" + attackVictim, nil, "", 403, true},
		{"lower-case method", "delete", cm, nil, "", 405, true},
		{"capitalised method", "Delete", cm, nil, "", 405, true},
		{"TRACE", "TRACE", cm, nil, "", 405, true},
		{"OPTIONS on a resource", "OPTIONS", cm, nil, "", 405, true},
		{"method override header", "POST", cm, http.Header{"X-Http-Method-Override": {"DELETE"}, "Content-Type": {"application/json"}}, "{}", 405, false},
		{"exec over GET WebSocket", "GET", ex, wsUpgrade(), "", 403, true},
		{"exec over POST SPDY", "POST", ex, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}, "X-Stream-Protocol-Version": {"v4.channel.k8s.io"}}, "", 403, true},
		{"exec without an upgrade", "POST", ex, nil, "", 403, true},
		{"exec with the allowed command plus one", "POST", "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release&command=/etc/shadow&stdout=true", spdyUpgrade(), "", 403, true},
		{"exec with a semicolon-joined parameter", "POST", "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release;command=sh&stdout=true", spdyUpgrade(), "", 403, true},
		{"exec with tty=yes", "POST", "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release&stdout=true&tty=yes", spdyUpgrade(), "", 403, true},
		{"exec with an empty tty=", "GET", "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release&stdout=true&tty=", wsUpgrade(), "", 403, true},
		{"attach over WebSocket", "GET", "/api/v1/namespaces/prod/pods/toolbox/attach?stdout=true&stdin=true", wsUpgrade(), "", 403, true},
		{"exec with a trailing slash", "POST", "/api/v1/namespaces/prod/pods/toolbox/exec/" + execQ, spdyUpgrade(), "", 400, true},
		{"upper-case EXEC subresource", "POST", "/api/v1/namespaces/prod/pods/toolbox/EXEC" + execQ, spdyUpgrade(), "", 501, true},
		{"legacy watch path to prod secrets", "GET", "/api/v1/watch/namespaces/prod/secrets", nil, "", 403, true},
		{"prod secret with a trailing slash", "GET", "/api/v1/namespaces/prod/secrets/" + attackSecret + "/", nil, "", 400, true},
		{"secrets of every namespace", "GET", "/api/v1/secrets?fieldSelector=metadata.namespace%3Dprod", nil, "", 403, false},
		// The kubelet's endpoints through a proxy are the pod streams they
		// are: the deny rule on pods/exec and pods/attach in prod refuses
		// them, and what a rule would allow is refused as not relayed.
		{"nodes/proxy to the kubelet's /exec", "POST", kubelet("exec/prod/toolbox/main" + execQ), spdyUpgrade(), "", 403, true},
		{"nodes/proxy to the kubelet's /run", "POST", kubelet("run/prod/toolbox/main?cmd=echo+$((6*7))-pwned"), nil, "", 403, true},
		{"nodes/proxy to the kubelet's /run, allowed command", "POST", kubelet("run/prod/toolbox/main?cmd=cat+/etc/os-release"), nil, "", 403, true},
		{"nodes/proxy to the kubelet's /run with a pod uid", "POST", kubelet("run/prod/toolbox/0c0ffee0/main?cmd=echo+$((6*7))-pwned"), nil, "", 403, true},
		{"nodes/proxy to the kubelet's /attach", "GET", kubelet("attach/prod/toolbox/main?stdout=true"), wsUpgrade(), "", 403, true},
		{"nodes/proxy to the kubelet's /portForward", "GET", kubelet("portForward/prod/toolbox?port=80"), wsUpgrade(), "", 403, true},
		{"nodes/proxy to the kubelet's /cri", "GET", kubelet("cri/exec/0123456789"), wsUpgrade(), "", 403, true},
		{"nodes/proxy to the kubelet's upper-case /RUN", "POST", kubelet("RUN/prod/toolbox/main?cmd=echo+$((6*7))-pwned"), nil, "", 403, true},
		{"legacy /proxy/nodes to the kubelet's /run", "POST", "/api/v1/proxy/nodes/testnode/run/prod/toolbox/main?cmd=echo+$((6*7))-pwned", nil, "", 403, true},
		{"pods/proxy to the kubelet's /exec", "POST", podKubelet("exec/prod/toolbox/main" + execQ), spdyUpgrade(), "", 403, true},
		{"pods/proxy to the kubelet's /run", "POST", podKubelet("run/prod/toolbox/main?cmd=echo+$((6*7))-pwned"), nil, "", 403, true},
		{"services/proxy to the kubernetes service's exec", "POST", "/api/v1/namespaces/default/services/https:kubernetes:443/proxy" + ex, spdyUpgrade(), "", 403, true},
		{"services/proxy to the kubernetes service's exec, no upgrade", "POST", "/api/v1/namespaces/default/services/https:kubernetes:443/proxy" + ex, nil, "", 403, true},
		{"body on a GET naming a delete", "GET", "/api/v1/namespaces/dev/pods", http.Header{"Content-Type": {"application/json"}}, `{"kind":"DeleteOptions","apiVersion":"v1"}`, 200, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body *strings.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			var r reply
			if body != nil {
				r = k.send(t, tc.method, tc.path, k.agent, body, tc.hdr.Clone())
			} else {
				r = k.send(t, tc.method, tc.path, k.agent, nil, tc.hdr.Clone())
			}
			if r.code != tc.want {
				t.Fatalf("status %d, want %d: %.400s", r.code, tc.want, r.body)
			}
			if tc.byKubegate && !fromKubegate(r) {
				t.Errorf("the refusal is not kubegate's: %.300s", r.body)
			}
			if strings.Contains(r.body, "42-pwned") || strings.Contains(r.body, k.secretValue) {
				t.Errorf("the forbidden thing happened: %.400s", r.body)
			}
		})
	}

	// The policy's allowed exec in prod, with and without a TTY asked for
	// the way the apiserver reads it: the TTY variant must be refused, and
	// the plain one runs without a TTY (no \r\n from a terminal).
	t.Run("control: the allowed exec runs without a TTY", func(t *testing.T) {
		out, code := k.wsExec(t, "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release&stdout=true&tty=false")
		if code != http.StatusSwitchingProtocols || out == "" || strings.Contains(out, "\r\n") {
			t.Errorf("status %d, output %q; want 101 and plain output", code, out)
		}
	})
	t.Run("the allowed exec with tty=on gets no TTY", func(t *testing.T) {
		out, code := k.wsExec(t, "/api/v1/namespaces/prod/pods/toolbox/exec?command=cat&command=/etc/os-release&stdout=true&tty=on")
		if code != http.StatusForbidden {
			t.Errorf("status %d (output %q), want 403: policy allows this command only without a TTY", code, out)
		}
	})
	return len(cases) + 2
}

func wsUpgrade() http.Header {
	return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Protocol": {"v5.channel.k8s.io"}}
}

func spdyUpgrade() http.Header {
	return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}, "X-Stream-Protocol-Version": {"v4.channel.k8s.io"}}
}

// wsExec runs an exec over a v5 WebSocket through kubegate as the agent and
// returns its stdout, or the refusal's status.
func (k *attackKit) wsExec(t *testing.T, path string) (string, int) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: k.tlsCfg.Clone(), Subprotocols: []string{"v5.channel.k8s.io"}, HandshakeTimeout: 20 * time.Second}
	conn, resp, err := d.Dial("wss://"+k.host+path, http.Header{"Authorization": {"Bearer " + k.agent}})
	if err != nil {
		if resp != nil {
			return "", resp.StatusCode
		}
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var out strings.Builder
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			break
		}
		if len(msg) > 0 && msg[0] == 1 {
			out.Write(msg[1:])
		}
	}
	return out.String(), http.StatusSwitchingProtocols
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
