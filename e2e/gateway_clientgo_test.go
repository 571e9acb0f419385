package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// TestGatewayClientGoExecutors drives kubegate with client-go's own SPDY,
// WebSocket and fallback executors, as agents written in Go do.
func TestGatewayClientGoExecutors(t *testing.T) {
	g := gateway(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", g.agentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cfg.Host)
	u.Path = "/api/v1/namespaces/dev/pods/toolbox/exec"
	u.RawQuery = url.Values{"container": {"main"}, "stdin": {"true"}, "stdout": {"true"}, "stderr": {"true"},
		"command": {"sh", "-c", "cat; echo done >&2; exit 2"}}.Encode()
	executors := map[string]func() (remotecommand.Executor, error){
		"spdy": func() (remotecommand.Executor, error) { return remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u) },
		"websocket": func() (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
		},
		"fallback": func() (remotecommand.Executor, error) {
			ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
			if err != nil {
				return nil, err
			}
			spdy, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
			if err != nil {
				return nil, err
			}
			return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
				return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
			})
		},
	}
	for name, mk := range executors {
		t.Run(name, func(t *testing.T) {
			ex, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var out, errOut bytes.Buffer
			err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hello from " + name), Stdout: &out, Stderr: &errOut})
			var exitErr exec.CodeExitError
			if !errors.As(err, &exitErr) || exitErr.Code != 2 {
				t.Errorf("err = %v, want exit code 2", err)
			}
			if out.String() != "hello from "+name || errOut.String() != "done\n" {
				t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
			}
		})
	}
}
