package upgrade

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
)

// TestUpstreamTLSResumes checks that sessions sharing UpstreamTLS resume
// the apiserver's TLS session instead of a full handshake each, and that
// a session without it still dials (fully).
func TestUpstreamTLSResumes(t *testing.T) {
	resumed := make(chan bool, 4)
	up := websocket.Upgrader{Subprotocols: []string{wsProtocolV5}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resumed <- r.TLS.DidResume
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.WriteMessage(websocket.BinaryMessage, append([]byte{chanError}, `{"status":"Success"}`...))
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/api/v1/namespaces/dev/pods/p/exec?command=true&stdout=true")
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: rcCAPEM(srv)}}
	shared, err := UpstreamTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := func(tc *tls.Config) bool {
		t.Helper()
		exec, _, err := newUpstreamExecutor(cfg, u, tc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), rcTimeout)
		defer cancel()
		if err := exec.StreamWithContext(ctx, clientremotecommand.StreamOptions{Stdout: &bytes.Buffer{}}); err != nil {
			t.Fatal(err)
		}
		return <-resumed
	}
	if run(shared) {
		t.Error("the first session resumed a TLS session it cannot have had")
	}
	if !run(shared) {
		t.Error("the second session sharing UpstreamTLS did a full handshake")
	}
	if run(nil) {
		t.Error("a session with its own TLS config resumed")
	}
}
