package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/policy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// fakeAuthn accepts the bearer token "good" as user alice in group devs.
type fakeAuthn struct{}

func (fakeAuthn) Authenticate(_ context.Context, r *http.Request) (*identity.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer good":
		return &identity.Principal{User: "alice", UID: "u-1", Groups: []string{"devs"}, Extra: map[string][]string{"example.com/team": {"a b"}}, Issuer: "https://idp"}, nil
	case "":
		return nil, identity.ErrNoToken
	}
	return nil, identity.ErrInvalidToken
}

// fakePolicy allows everything but deletes, which it denies.
type fakePolicy struct{}

func (fakePolicy) Decide(in policy.Input) policy.Decision {
	if in.Request.Verb == "delete" {
		return policy.Decision{Action: policy.Deny, Rule: "no-deletes", Message: "not today"}
	}
	return policy.Decision{Action: policy.Allow, Rule: "everything"}
}

type memSink struct {
	mu  sync.Mutex
	evs []*auditv1.Event
	err error
}

func (m *memSink) Write(_ context.Context, ev *auditv1.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, ev)
	return m.err
}

func (m *memSink) Healthy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// newTestGateway puts a gateway in front of an upstream that echoes the
// headers it received as JSON.
func newTestGateway(t *testing.T) (*httptest.Server, *memSink) {
	t.Helper()
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	sink := &memSink{}
	g, err := New(Config{Upstream: u, Transport: upstream.Client().Transport, Authenticator: fakeAuthn{}, Policy: fakePolicy{}, Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	return front, sink
}

func do(t *testing.T, method, url string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestForwardSetsImpersonationAndStripsClientCredentials(t *testing.T) {
	front, _ := newTestGateway(t)
	cases := []struct {
		name string
		hdr  http.Header
	}{
		{"plain", http.Header{"Authorization": {"Bearer good"}}},
		{"connection names our headers", http.Header{"Authorization": {"Bearer good"}, "Connection": {"Impersonate-User, Impersonate-Group, keep-alive"}}},
		{"front-proxy headers", http.Header{"Authorization": {"Bearer good"}, "X-Remote-User": {"root"}, "X-Remote-Group": {"system:masters"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, front.URL+"/api/v1/namespaces/dev/pods", tc.hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s: %s", resp.Status, body)
			}
			var got http.Header
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Get("Impersonate-User") != "alice" || strings.Join(got.Values("Impersonate-Group"), ",") != "devs" || got.Get("Impersonate-Uid") != "u-1" {
				t.Errorf("impersonation headers upstream: %v", got)
			}
			if got.Get("Impersonate-Extra-Example.com%2fteam") != "a b" {
				t.Errorf("extra header upstream: %v", got)
			}
			for _, h := range []string{"Authorization", "X-Remote-User", "X-Remote-Group"} {
				if got.Get(h) != "" {
					t.Errorf("%s reached the upstream: %q", h, got.Get(h))
				}
			}
		})
	}
}

func TestRefusalsAreStatusesWithRequestID(t *testing.T) {
	front, sink := newTestGateway(t)
	cases := []struct {
		name   string
		method string
		path   string
		hdr    http.Header
		code   int
		reason metav1.StatusReason
		text   string
	}{
		{"no token", "GET", "/api/v1/pods", nil, 401, metav1.StatusReasonUnauthorized, "no bearer token"},
		{"bad token", "GET", "/api/v1/pods", http.Header{"Authorization": {"Bearer bad"}}, 401, metav1.StatusReasonUnauthorized, ""},
		{"denied", "DELETE", "/api/v1/namespaces/dev/pods/x", http.Header{"Authorization": {"Bearer good"}}, 403, metav1.StatusReasonForbidden, `delete pods "x" in namespace "dev" denied by rule "no-deletes": not today`},
		{"client impersonation", "GET", "/api/v1/pods", http.Header{"Authorization": {"Bearer good"}, "Impersonate-User": {"admin"}}, 403, metav1.StatusReasonForbidden, "impersonation headers"},
		{"dot segments", "GET", "/api/v1/namespaces/dev/../prod/pods", http.Header{"Authorization": {"Bearer good"}}, 400, metav1.StatusReasonBadRequest, "not canonical"},
		{"exec upgrade fails closed", "POST", "/api/v1/namespaces/dev/pods/x/exec?command=sh", http.Header{"Authorization": {"Bearer good"}, "Connection": {"Upgrade"}, "Upgrade": {"SPDY/3.1"}}, 501, "", "not configured to relay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := front.URL + tc.path
			req, _ := http.NewRequest(tc.method, u, nil)
			req.URL.Opaque = tc.path // keep dot segments as sent
			for k, vs := range tc.hdr {
				req.Header[k] = vs
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var st metav1.Status
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				t.Fatal(err)
			}
			id := resp.Header.Get("X-Kubegate-Request-Id")
			if resp.StatusCode != tc.code || int(st.Code) != tc.code || st.Kind != "Status" || (tc.reason != "" && st.Reason != tc.reason) {
				t.Errorf("got %d %+v, want %d %s", resp.StatusCode, st, tc.code, tc.reason)
			}
			if id == "" || !strings.Contains(st.Message, id) || !strings.Contains(st.Message, tc.text) {
				t.Errorf("message %q lacks request id %q or %q", st.Message, id, tc.text)
			}
			if strings.Contains(st.Message, "Bearer") {
				t.Errorf("message echoes the credential: %q", st.Message)
			}
		})
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.evs) != len(cases) {
		t.Errorf("%d audit events for %d requests", len(sink.evs), len(cases))
	}
}

func TestAuditFailureFailsClosed(t *testing.T) {
	front, sink := newTestGateway(t)
	sink.mu.Lock()
	sink.err = errors.New("disk full")
	sink.mu.Unlock()
	resp, body := do(t, http.MethodGet, front.URL+"/api/v1/pods", http.Header{"Authorization": {"Bearer good"}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "auditing is unavailable") {
		t.Errorf("with a failing audit sink: %s %s", resp.Status, body)
	}
}

func TestUpstreamDownIs503AndNotReady(t *testing.T) {
	upstream := httptest.NewTLSServer(http.NotFoundHandler())
	u, _ := url.Parse(upstream.URL)
	transport := upstream.Client().Transport
	upstream.Close() // nothing listens there any more
	g, err := New(Config{Upstream: u, Transport: transport, Authenticator: fakeAuthn{}, Policy: fakePolicy{}, Audit: &memSink{}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	defer front.Close()
	resp, body := do(t, http.MethodGet, front.URL+"/api/v1/pods", http.Header{"Authorization": {"Bearer good"}})
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("reply is not a Status: %v: %s", err, body)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || st.Kind != "Status" || !strings.Contains(st.Message, "API server is unavailable") {
		t.Errorf("upstream down: %s %+v", resp.Status, st)
	}
	if err := g.Ready(context.Background()); err == nil {
		t.Error("Ready is nil with the apiserver down")
	}
}

// TestRefusalsReachDiscoveryClients: client-go's discovery client (the
// first thing kubectl calls) cannot decode a Status and would print
// "unknown"; it gets the message as text instead.
func TestRefusalsReachDiscoveryClients(t *testing.T) {
	front, _ := newTestGateway(t)
	dc := discovery.NewDiscoveryClientForConfigOrDie(&rest.Config{Host: front.URL, BearerToken: "good",
		Impersonate: rest.ImpersonationConfig{UserName: "admin"}})
	_, err := dc.ServerGroups()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "impersonation headers from clients are not accepted") ||
		!strings.Contains(err.Error(), "kubegate request id") {
		t.Errorf("discovery with client impersonation: %v; want kubegate's refusal", err)
	}
}
