package gateway

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/k8swire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// wsWatchUpstream is a fake apiserver serving WebSocket watches: each
// message it is handed on events is sent as one WebSocket message, of the
// given type, once the client has read the one before.
type wsWatchUpstream struct {
	contentType string
	msgType     int
	events      chan []byte
	// impersonated is the Impersonate-User header of the last upgrade.
	impersonated chan string
}

func (u *wsWatchUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("bare") != "" {
		w.WriteHeader(http.StatusForbidden) // Go sniffs text/plain
		_, _ = io.WriteString(w, "forbidden: token "+plantedJWT)
		return
	}
	if r.URL.Query().Get("watch") != "true" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"forbidden: token `+plantedJWT+`","code":403}`)
		return
	}
	u.impersonated <- r.Header.Get("Impersonate-User")
	up := websocket.Upgrader{}
	hdr := http.Header{}
	if u.contentType != "" {
		hdr.Set("Content-Type", u.contentType)
	}
	c, err := up.Upgrade(w, r, hdr)
	if err != nil {
		return
	}
	defer c.Close()
	for ev := range u.events {
		if err := c.WriteMessage(u.msgType, ev); err != nil {
			return
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"), time.Now().Add(wsCloseWait))
}

func newWSWatchGateway(t *testing.T, up *wsWatchUpstream) (string, *memSink) {
	t.Helper()
	srv := httptest.NewTLSServer(up)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultRules: true, DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	sink := &memSink{}
	g, err := New(Config{Upstream: u, Transport: srv.Client().Transport, Authenticator: groupAuthn{}, Policy: allowAll{},
		Audit: sink, Masker: m, MaskExemptGroups: []string{"sre"},
		StreamUpstream: &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	return "ws" + strings.TrimPrefix(front.URL, "http"), sink
}

func dialWatch(t *testing.T, base, path, user string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	return websocket.DefaultDialer.Dial(base+path, http.Header{"Authorization": {"Bearer " + user}})
}

const secretEvent = `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"dev"},"data":{"password":"` + plantedSecret + `"},"type":"Opaque"}}`

// TestWebSocketWatchMasksEachMessage: a JSON watch over WebSocket reaches
// the client one masked event per message, each before the apiserver sends
// the next; an event that cannot be masked closes the watch with 1011 and
// is not sent.
func TestWebSocketWatchMasksEachMessage(t *testing.T) {
	up := &wsWatchUpstream{contentType: "application/json", msgType: websocket.TextMessage, events: make(chan []byte), impersonated: make(chan string, 4)}
	base, sink := newWSWatchGateway(t, up)
	c, _, err := dialWatch(t, base, "/api/v1/namespaces/dev/secrets?watch=true", "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-up.impersonated; got != "alice" {
		t.Errorf("upstream impersonates %q, want alice", got)
	}
	plain := `{"type":"BOOKMARK","object":{"kind":"Secret","apiVersion":"v1","metadata":{"resourceVersion":"12"}}}`
	for _, ev := range []string{secretEvent, plain, `{"type":"ADDED","object":{"kind":"Status","apiVersion":"v1","message":"Bearer ` + plantedJWT + `"}}`} {
		up.events <- []byte(ev) // unbuffered: the previous event has been read
		mt, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if mt != websocket.TextMessage {
			t.Errorf("message type %d, want text", mt)
		}
		if bytes.Contains(msg, []byte(plantedSecret)) || bytes.Contains(msg, []byte(plantedJWT)) {
			t.Fatalf("secret passed: %s", msg)
		}
		switch ev {
		case secretEvent:
			if !bytes.Contains(msg, []byte(k8swire.MaskMarkerBase64)) {
				t.Errorf("secret data not masked: %s", msg)
			}
		case plain:
			if string(msg) != plain {
				t.Errorf("unmasked event changed:\n%s\n%s", msg, plain)
			}
		}
	}
	// A truncated event holding a secret: the watch is closed, not sent.
	up.events <- []byte(secretEvent[:len(secretEvent)-30])
	_, msg, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr {
		t.Fatalf("after an unmaskable event: %q, %v; want close 1011", msg, err)
	}
	close(up.events)
	c.Close()
	ev := sink.find(func(a map[string]string) bool { return a[audit.AnnotationMaskError] != "" })
	if ev == nil {
		t.Fatal("no audit event says the watch could not be masked")
	}
	if strings.Contains(ev[audit.AnnotationMaskError], plantedSecret) {
		t.Error("the audit annotation holds the secret")
	}
}

// TestWebSocketWatchProtobuf: binary protobuf events are masked too, also
// when the 101 has no Content-Type, as the apiserver's has not.
func TestWebSocketWatchProtobuf(t *testing.T) {
	up := &wsWatchUpstream{contentType: "", msgType: websocket.BinaryMessage, events: make(chan []byte, 1), impersonated: make(chan string, 4)}
	base, _ := newWSWatchGateway(t, up)
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	var obj bytes.Buffer
	secret := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "dev"},
		Data: map[string][]byte{"password": []byte("secret-value-42")}}
	if err := pb.Encode(secret, &obj); err != nil {
		t.Fatal(err)
	}
	ev := metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{Raw: obj.Bytes()}}
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	up.events <- b
	close(up.events)
	c, _, err := dialWatch(t, base, "/api/v1/namespaces/dev/secrets?watch=true", "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mt, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if mt != websocket.BinaryMessage || bytes.Contains(msg, []byte("secret-value-42")) {
		t.Fatalf("type %d, secret passed: %v", mt, bytes.Contains(msg, []byte("secret-value-42")))
	}
	var got metav1.WatchEvent
	if err := got.Unmarshal(msg); err != nil {
		t.Fatal(err)
	}
	o, _, err := pb.Decode(got.Object.Raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := o.(*corev1.Secret); string(s.Data["password"]) != k8swire.MaskMarker || got.Type != "ADDED" {
		t.Errorf("event %s, password %q", got.Type, s.Data["password"])
	}
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("end of the watch: %v, want a normal close", err)
	}
}

// TestWebSocketWatchRefused: the apiserver's refusal of the upgrade
// reaches the client as its HTTP reply, masked.
func TestWebSocketWatchRefused(t *testing.T) {
	up := &wsWatchUpstream{contentType: "application/json", msgType: websocket.TextMessage, events: make(chan []byte), impersonated: make(chan string, 4)}
	base, _ := newWSWatchGateway(t, up)
	// No watch=true in the query the fake sees: it refuses. The gateway
	// classifies watch=1 as a watch too.
	_, resp, err := dialWatch(t, base, "/api/v1/namespaces/dev/secrets?watch=1", "alice")
	if err == nil || resp == nil {
		t.Fatalf("dial: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || bytes.Contains(body, []byte(plantedJWT)) || !bytes.Contains(body, []byte(k8swire.MaskMarker)) {
		t.Errorf("refusal: %d %s", resp.StatusCode, body)
	}
	// A refusal whose body a rule cannot be applied to is withheld.
	_, resp, err = dialWatch(t, base, "/api/v1/namespaces/dev/secrets?watch=1&bare=1", "alice")
	if err == nil || resp == nil {
		t.Fatalf("dial: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || bytes.Contains(body, []byte(plantedJWT)) {
		t.Errorf("unmaskable refusal: %d %s", resp.StatusCode, body)
	}
}
