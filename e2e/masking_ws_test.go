package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/kubegate/kubegate/internal/testenv"
	"github.com/kubegate/kubegate/k8swire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientws "k8s.io/client-go/transport/websocket"
)

// TestMaskingWebSocketWatch watches a Secret through kubegate over
// WebSocket (`?watch=true` upgraded, as browser and JavaScript clients
// watch), with client-go's WebSocket transport, in JSON and in protobuf,
// while the Secret is updated: every event arrives as its own message with
// the data masked, and the planted values reach neither the client nor
// kubegate's data directory or log. The exempt admin's watch shows them.
func TestMaskingWebSocketWatch(t *testing.T) {
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	stamp := fmt.Sprint(time.Now().UnixNano())
	planted := []string{"ws-first-" + stamp, "ws-second-" + stamp, "ws-third-" + stamp}
	secrets := env.Client.CoreV1().Secrets("dev")
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ws-planted"},
		Data: map[string][]byte{"password": []byte(planted[0])}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer secrets.Delete(context.Background(), "ws-planted", metav1.DeleteOptions{})
	update := func(v string) {
		t.Helper()
		s, err := secrets.Get(ctx, "ws-planted", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Data["password"] = []byte(v)
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var received [][]byte
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	// password decodes one message into the event type and the Secret's
	// password.
	password := func(accept string, mt int, msg []byte) (string, string) {
		t.Helper()
		if accept == runtime.ContentTypeJSON {
			if mt != websocket.TextMessage {
				t.Errorf("JSON event in a message of type %d", mt)
			}
			var ev struct {
				Type   string
				Object corev1.Secret
			}
			if err := json.Unmarshal(msg, &ev); err != nil {
				t.Fatalf("event %q: %v", msg, err)
			}
			return ev.Type, string(ev.Object.Data["password"])
		}
		if mt != websocket.BinaryMessage {
			t.Errorf("protobuf event in a message of type %d", mt)
		}
		var ev metav1.WatchEvent
		if err := ev.Unmarshal(msg); err != nil {
			t.Fatal(err)
		}
		obj, _, err := pb.Decode(ev.Object.Raw, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Type, string(obj.(*corev1.Secret).Data["password"])
	}
	for i, accept := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		t.Run(accept, func(t *testing.T) {
			conn := dialWatchWebSocket(t, ctx, g.agentKubeconfig, accept)
			defer conn.Close()
			mt, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			received = append(received, msg)
			if typ, pw := password(accept, mt, msg); typ != "ADDED" || pw != k8swire.MaskMarker {
				t.Errorf("first event %s, password %q; want ADDED and the marker", typ, pw)
			}
			update(planted[i+1])
			mt, msg, err = conn.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			received = append(received, msg)
			if typ, pw := password(accept, mt, msg); typ != "MODIFIED" || pw != k8swire.MaskMarker {
				t.Errorf("second event %s, password %q; want MODIFIED and the marker", typ, pw)
			}
		})
	}
	for _, v := range planted {
		for _, msg := range received {
			if bytes.Contains(msg, []byte(v)) || bytes.Contains(msg, []byte(base64.StdEncoding.EncodeToString([]byte(v)))) {
				t.Errorf("a planted value reached the client: %q", msg)
			}
		}
	}

	// The exempt admin sees the value; the event says it was exempt.
	conn := dialWatchWebSocket(t, ctx, g.adminKubeconfig, runtime.ContentTypeJSON)
	mt, msg, err := conn.ReadMessage()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, pw := password(runtime.ContentTypeJSON, mt, msg); pw != planted[2] {
		t.Errorf("the exempt admin's watch shows %q", pw)
	}
	findAuditEvent(t, g.auditPath, func(e auditEvent) bool {
		return e.Annotations["kubegate.dev/mask-exempt"] == "dex:platform-admins" && e.Verb == "watch" && e.ObjectRef != nil && e.ObjectRef.Resource == "secrets"
	})

	// Nothing stored holds a planted value.
	for _, root := range []string{filepath.Dir(filepath.Dir(g.auditPath)), filepath.Join(env.Dir, "logs", "kubegate.log")} {
		_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, v := range planted {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("a planted value is stored in %s", path)
				}
			}
			return nil
		})
	}
}

// dialWatchWebSocket opens a WebSocket watch of the Secret ws-planted in
// dev through kubegate with client-go's WebSocket transport, as the user
// of kubeconfig, offering one subprotocol (which the apiserver echoes).
func dialWatchWebSocket(t *testing.T, ctx context.Context, kubeconfig, accept string) *websocket.Conn {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rt, holder, err := clientws.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/api/v1/namespaces/dev/secrets"
	u.RawQuery = url.Values{"watch": {"true"}, "fieldSelector": {"metadata.name=ws-planted"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	conn, err := clientws.Negotiate(rt, holder, req, "kubegate.e2e.watch")
	if err != nil {
		t.Fatalf("WebSocket watch through kubegate: %v", err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(d) // a missing event fails the test instead of hanging it
	}
	if conn.Subprotocol() != "kubegate.e2e.watch" {
		t.Errorf("subprotocol %q", conn.Subprotocol())
	}
	return conn
}
