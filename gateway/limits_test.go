package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

func TestLimiterRateIsPerPrincipal(t *testing.T) {
	l := newLimiter(Limits{RequestsPerSecond: 10, Burst: 3})
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if err := l.allow("alice", t0); err != nil {
			t.Fatalf("request %d within the burst: %v", i+1, err)
		}
	}
	err := l.allow("alice", t0)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("4th request at once: %v, want ErrRateLimited", err)
	}
	if got := retryAfterSeconds(err); got != 1 {
		t.Errorf("Retry-After %d, want 1 (a token every 100ms, rounded up)", got)
	}
	if !strings.Contains(err.Error(), `user "alice" may make 10 requests per second (bursts of 3)`) {
		t.Errorf("message %q", err)
	}
	if err := l.allow("bob", t0); err != nil {
		t.Errorf("bob is limited by alice's rate: %v", err)
	}
	if err := l.allow("alice", t0.Add(100*time.Millisecond)); err != nil {
		t.Errorf("after one token's time: %v", err)
	}
	if err := newLimiter(Limits{RequestsPerSecond: -1}).allow("alice", t0); err != nil {
		t.Errorf("a negative rate is no limit: %v", err)
	}
}

func TestLimiterDefaults(t *testing.T) {
	l := Limits{}.withDefaults()
	if l.RequestsPerSecond != 100 || l.Burst != 300 || l.MaxStreams != 128 {
		t.Errorf("defaults %+v", l)
	}
	if l := (Limits{RequestsPerSecond: 0.1}).withDefaults(); l.Burst != 1 {
		t.Errorf("burst for 0.1/s: %d, want 1", l.Burst)
	}
}

func TestLimiterStreams(t *testing.T) {
	l := newLimiter(Limits{MaxStreams: 2})
	now := time.Unix(1000, 0)
	done1, err := l.openStream("alice", now)
	if err != nil {
		t.Fatal(err)
	}
	done2, err := l.openStream("alice", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.openStream("alice", now); !errors.Is(err, ErrTooManyStreams) || retryAfterSeconds(err) != 0 {
		t.Fatalf("3rd stream: %v, want ErrTooManyStreams without Retry-After", err)
	}
	if d, err := l.openStream("bob", now); err != nil {
		t.Errorf("bob is limited by alice's streams: %v", err)
	} else {
		d()
	}
	done1()
	done1() // ending twice frees one slot only
	done3, err := l.openStream("alice", now)
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	if _, err := l.openStream("alice", now); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("ending a stream twice freed two slots: %v", err)
	}
	done2()
	done3()
}

// TestLimiterForgetsIdlePrincipals: state is dropped once it equals a
// fresh entry (a full bucket, no stream), and kept otherwise.
func TestLimiterForgetsIdlePrincipals(t *testing.T) {
	l := newLimiter(Limits{RequestsPerSecond: 1, Burst: 2})
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		_ = l.allow(fmt.Sprint("user-", i), t0)
	}
	done, err := l.openStream("streamer", t0)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		for i := range l.shards {
			l.shards[i].mu.Lock()
			n += len(l.shards[i].byKey)
			l.shards[i].mu.Unlock()
		}
		return n
	}
	if n := count(); n != 1001 {
		t.Fatalf("%d entries, want 1001", n)
	}
	// A minute later every bucket is full again; touching each shard sweeps it.
	later := t0.Add(2 * sweepEvery)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		s.sweep(later)
		s.mu.Unlock()
	}
	if n := count(); n != 1 {
		t.Errorf("%d entries after the sweep, want only the one with an open stream", n)
	}
	done()
}

// limitFixture is a gateway with limits in front of an upstream whose
// watches last until the test ends.
type limitFixture struct {
	front   *httptest.Server
	reg     *prometheus.Registry
	sink    *memSink
	watches atomic.Int32
}

func newLimitGateway(t *testing.T, cfg Config) *limitFixture {
	t.Helper()
	f := &limitFixture{reg: prometheus.NewRegistry(), sink: &memSink{}}
	stop := make(chan struct{})
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			f.watches.Add(1)
			defer f.watches.Add(-1)
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		if d := r.URL.Query().Get("sleep"); d != "" {
			// A slow apiserver answer, not synchronisation.
			dur, _ := time.ParseDuration(d)
			time.Sleep(dur)
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"bodyBytes": len(b)})
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	cfg.Upstream, cfg.Transport, cfg.Authenticator, cfg.Policy, cfg.Audit = u, upstream.Client().Transport, fakeAuthn{}, fakePolicy{}, f.sink
	cfg.Metrics = NewMetrics(f.reg)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.front = httptest.NewServer(g)
	t.Cleanup(f.front.Close)
	t.Cleanup(func() { close(stop) }) // first: ends the watches
	return f
}

func (f *limitFixture) refusals(t *testing.T, limit string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kubegate_limit_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == limit {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no kubegate_limit_refusals_total{limit=%q}", limit)
	return 0
}

func decodeStatus(t *testing.T, b []byte) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("reply is not a Status (%v): %s", err, b)
	}
	return st
}

// TestRateLimitIs429WithRetryAfter: over its rate a principal gets a 429
// Status naming the limit, with Retry-After in the header and the details
// (which client-go honours), and the refusal is counted and audited.
func TestRateLimitIs429WithRetryAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newLimitGateway(t, Config{Limits: Limits{RequestsPerSecond: 0.5, Burst: 2}, Now: func() time.Time { return now }})
	auth := http.Header{"Authorization": {"Bearer good"}}
	for i := range 2 {
		if resp, body := do(t, "GET", f.front.URL+"/api/v1/namespaces/dev/pods", auth); resp.StatusCode != 200 {
			t.Fatalf("request %d: %s %s", i+1, resp.Status, body)
		}
	}
	resp, body := do(t, "GET", f.front.URL+"/api/v1/namespaces/dev/pods", auth)
	st := decodeStatus(t, body)
	id := resp.Header.Get("X-Kubegate-Request-Id")
	if resp.StatusCode != http.StatusTooManyRequests || st.Reason != metav1.StatusReasonTooManyRequests || st.Code != 429 {
		t.Fatalf("got %s %+v, want 429 TooManyRequests", resp.Status, st)
	}
	if resp.Header.Get("Retry-After") != "2" || st.Details == nil || st.Details.RetryAfterSeconds != 2 {
		t.Errorf("Retry-After %q, details %+v; want 2 s (one token per 2 s)", resp.Header.Get("Retry-After"), st.Details)
	}
	if !strings.Contains(st.Message, `kubegate: request rate limit exceeded: user "alice" may make 0.5 requests per second`) || !strings.Contains(st.Message, id) {
		t.Errorf("message %q lacks the limit or the request id %s", st.Message, id)
	}
	if n := f.refusals(t, "rate"); n != 1 {
		t.Errorf("rate refusals %v, want 1", n)
	}
	if ev := f.sink.find(func(map[string]string) bool { return true }); ev == nil {
		t.Error("no audit events")
	}
	f.sink.mu.Lock()
	last := f.sink.evs[len(f.sink.evs)-1]
	f.sink.mu.Unlock()
	if last.ResponseStatus == nil || last.ResponseStatus.Code != 429 {
		t.Errorf("the refusal's audit event: %+v", last.ResponseStatus)
	}
	now = now.Add(2 * time.Second)
	if resp, body := do(t, "GET", f.front.URL+"/api/v1/namespaces/dev/pods", auth); resp.StatusCode != 200 {
		t.Errorf("after Retry-After: %s %s", resp.Status, body)
	}
}

// TestStreamLimitCountsWatches: a principal's open watches count toward
// its streams; the one over gets 429, and a closed watch frees its slot.
func TestStreamLimitCountsWatches(t *testing.T) {
	f := newLimitGateway(t, Config{Limits: Limits{MaxStreams: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.front.URL+"/api/v1/namespaces/dev/pods?watch=true", nil)
	req.Header.Set("Authorization", "Bearer good")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("first watch: %s", resp.Status)
	}
	auth := http.Header{"Authorization": {"Bearer good"}}
	resp2, body := do(t, "GET", f.front.URL+"/api/v1/namespaces/dev/configmaps?watch=true", auth)
	st := decodeStatus(t, body)
	if resp2.StatusCode != http.StatusTooManyRequests || !strings.Contains(st.Message, `user "alice" has 1 exec, attach, port-forward, watch or log-follow streams open`) {
		t.Fatalf("second watch: %s %q", resp2.Status, st.Message)
	}
	if resp2.Header.Get("Retry-After") != "" {
		t.Errorf("a stream refusal has no honest Retry-After, got %q", resp2.Header.Get("Retry-After"))
	}
	if resp, body := do(t, "GET", f.front.URL+"/api/v1/namespaces/dev/pods", auth); resp.StatusCode != 200 {
		t.Errorf("a plain list is not a stream: %s %s", resp.Status, body)
	}
	if n := f.refusals(t, "streams"); n != 1 {
		t.Errorf("stream refusals %v, want 1", n)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", f.front.URL+"/api/v1/namespaces/dev/pods?watch=true", nil)
		req.Header.Set("Authorization", "Bearer good")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		code := r.StatusCode
		cancel()
		r.Body.Close()
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed watch's slot was never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowBodyIs408 sends bodies that stall over a raw connection: the
// body read timeout answers 408 (for bodies kubegate reads and for bodies
// it forwards) and closes the connection, while other clients are served;
// a body sent in time is not cut off by the deadline while a slow upstream
// answers.
func TestSlowBodyIs408(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newLimitGateway(t, Config{BodyReadTimeout: timeout})
	host := strings.TrimPrefix(f.front.URL, "http://")
	for _, tc := range []struct{ name, method, path string }{
		{"create body read by kubegate", "POST", "/api/v1/namespaces/dev/configmaps"},
		{"get body forwarded", "GET", "/api/v1/namespaces/dev/configmaps/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":", tc.method, tc.path)
			// Another client is served meanwhile.
			if resp, body := do(t, "GET", f.front.URL+"/api/v1/namespaces/dev/pods", http.Header{"Authorization": {"Bearer good"}}); resp.StatusCode != 200 {
				t.Fatalf("another client: %s %s", resp.Status, body)
			}
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hung test's bound
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no reply to the slow body: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			t.Logf("%s %q", resp.Status, body)
			st := decodeStatus(t, body)
			if resp.StatusCode != http.StatusRequestTimeout || st.Reason != metav1.StatusReasonTimeout ||
				!strings.Contains(st.Message, "request body not received in time") || !strings.Contains(st.Message, resp.Header.Get("X-Kubegate-Request-Id")) {
				t.Fatalf("got %s %q, want kubegate's 408", resp.Status, st.Message)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after the timed-out body: %v, want the server to close the connection", err)
			}
		})
	}
	if n := f.refusals(t, "body-timeout"); n != 2 {
		t.Errorf("body-timeout refusals %v, want 2", n)
	}
	t.Run("a prompt body and a slow answer", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.front.URL+"/api/v1/namespaces/dev/configmaps?sleep="+(3*timeout).String(), strings.NewReader(`{"kind":"ConfigMap"}`))
		req.Header.Set("Authorization", "Bearer good")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"bodyBytes":20`) {
			t.Errorf("got %s %s, want the upstream's answer", resp.Status, b)
		}
	})
}

// TestUpstreamWithAWrongCAFailsClosed: kubegate verifies the apiserver's
// certificate; one from another CA is refused with a Status, nothing is
// forwarded, and the gateway is not ready.
func TestUpstreamWithAWrongCAFailsClosed(t *testing.T) {
	var reached atomic.Int32
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer upstream.Close()
	// httptest's servers all share one certificate: the other CA is new.
	transport, err := rest.TransportFor(&rest.Config{Host: upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: newCAPEM(t)}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(upstream.URL)
	g, err := New(Config{Upstream: u, Transport: transport, Authenticator: fakeAuthn{}, Policy: fakePolicy{}, Audit: &memSink{}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	defer front.Close()
	resp, body := do(t, "GET", front.URL+"/api/v1/namespaces/dev/pods", http.Header{"Authorization": {"Bearer good"}})
	st := decodeStatus(t, body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(st.Message, "the Kubernetes API server is unavailable") ||
		!strings.Contains(st.Message, "certificate signed by unknown authority") {
		t.Errorf("got %s %q, want 502 naming the certificate", resp.Status, st.Message)
	}
	if reached.Load() != 0 {
		t.Error("a request reached the upstream with the unverified certificate")
	}
	if err := g.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Ready: %v, want a certificate error", err)
	}
}

// newCAPEM makes a self-signed CA certificate nobody else uses.
func newCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "some other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// BenchmarkLimiterAllow is the per-request cost of the rate limit, with
// many principals in parallel.
func BenchmarkLimiterAllow(b *testing.B) {
	l := newLimiter(Limits{RequestsPerSecond: 1e9, Burst: 1e9})
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprint("user-", i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := l.allow(users[i%len(users)], now); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// TestMalformedBodyClosesTheConnection: after a body kubegate could not
// read (a bad chunk size), the connection is closed, so bytes after it are
// never taken for a request of their own. The body's read deadline must
// not hide the unread body from the server.
func TestMalformedBodyClosesTheConnection(t *testing.T) {
	f := newLimitGateway(t, Config{BodyReadTimeout: time.Minute})
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hidden := "GET /api/v1/namespaces/dev/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n"
	fmt.Fprintf(conn, "POST /api/v1/namespaces/dev/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n%s", hidden)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hung test's bound
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %s, want 400", resp.Status)
	}
	if next, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("the bytes after the bad body were served as a request: %s", next.Status)
	}
}

// TestSlowBodyOverHTTP2Is408: the body read timeout bounds an HTTP/2
// stream's body too, without touching the connection's other streams.
func TestSlowBodyOverHTTP2Is408(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newLimitGateway(t, Config{BodyReadTimeout: timeout})
	h2 := httptest.NewUnstartedServer(f.front.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	client := h2.Client()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = io.WriteString(pw, `{"kind":`) }() // and then nothing
	req, _ := http.NewRequest("POST", h2.URL+"/api/v1/namespaces/dev/configmaps", pr)
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	st := decodeStatus(t, b)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(st.Message, "request body not received in time") {
		t.Errorf("got %s %s %q, want HTTP/2 408", resp.Proto, resp.Status, st.Message)
	}
	// Another request over HTTP/2 is answered.
	req2, _ := http.NewRequest("GET", h2.URL+"/api/v1/namespaces/dev/pods", nil)
	req2.Header.Set("Authorization", "Bearer good")
	resp2, err := client.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Errorf("a later request: %s", resp2.Status)
	}
}
