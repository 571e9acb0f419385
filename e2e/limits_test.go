package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// limitsConfig is the limits section of the node TestLimitsThroughKubectl
// starts: tight enough to reach in a test, per user.
const limitsConfig = `
limits:
  requestsPerSecond: 0.1
  burst: 20
  maxStreams: 1
  bodyReadTimeout: 1s
  handshakeTimeout: 1s
`

// TestLimitsThroughKubectl runs a kubegate node with tight limits and
// checks, through the real kubectl where a person would meet them, that
// each refusal is kubegate's clear Status and is counted: a user over its
// request rate, a second concurrent exec over the stream limit, a slow
// body, a stalled TLS handshake.
func TestLimitsThroughKubectl(t *testing.T) {
	env := testenv.Get(t)
	gateway(t) // the shared node grants the RBAC this one relies on too
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, env, stack.Options{Dir: filepath.Join(env.Dir, "kubegate-limits"), Policy: testPolicy + limitsConfig})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	tlsCfg := &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}

	t.Run("a user over its rate gets kubectl's 429 message", func(t *testing.T) {
		admin := st.Kubeconfigs["admin"]
		// kubectl caches discovery, so the exec below makes two requests
		// only: it gets the pod, then opens the stream.
		mustSucceed(t, kc(t, admin, nil, "exec", "-n", "dev", "toolbox", "--", "true"), "warm-up exec")
		client, base := restClient(t, admin)
		// Spend the user's burst quickly, until kubegate refuses.
		var refusal *http.Response
		for i := 0; i < 100 && refusal == nil; i++ {
			resp, err := client.Get(base + "/api/v1/namespaces/dev/configmaps?limit=1")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				refusal = resp
			} else if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %s", i+1, resp.Status)
			}
		}
		if refusal == nil {
			t.Fatal("100 requests at once were never refused (burst 20)")
		}
		if ra, err := strconv.Atoi(refusal.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 10 {
			t.Errorf("Retry-After %q, want 1..10 s (one request per 10 s)", refusal.Header.Get("Retry-After"))
		}
		// kubectl's GET of the pod is refused too; client-go waits out
		// Retry-After and gets the next token. Its exec stream then finds
		// the bucket empty, and streams are not retried: kubectl prints
		// the refusal.
		r := kc(t, admin, nil, "exec", "-n", "dev", "toolbox", "--", "echo", "over the rate")
		out := userOutput(r.stderr)
		if r.code == 0 || !strings.Contains(out, "kubegate: request rate limit exceeded: user ") ||
			!strings.Contains(out, "may make 0.1 requests per second (bursts of 20)") || !strings.Contains(out, "kubegate request id") {
			t.Errorf("kubectl over the rate: exit %d, stdout %q, stderr %q", r.code, r.stdout, out)
		}
		if !strings.Contains(r.stderr, "429 Too Many Requests") {
			t.Errorf("kubectl's log shows no 429: %q", r.stderr)
		}
		t.Logf("kubectl printed: %s", out)
	})

	t.Run("a second exec over the stream limit", func(t *testing.T) {
		token := bearerToken(t, st.Kubeconfigs["agent"])
		d := websocket.Dialer{TLSClientConfig: tlsCfg.Clone(), Subprotocols: []string{"v5.channel.k8s.io"}, HandshakeTimeout: 30 * time.Second}
		// The first session holds its stream open: cat waits on stdin.
		conn, resp, err := d.Dial("wss://"+u.Host+"/api/v1/namespaces/dev/pods/toolbox/exec?command=cat&stdin=true&stdout=true", http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			t.Fatalf("first exec: %v (%v)", err, resp)
		}
		r := kc(t, st.Kubeconfigs["agent"], nil, "exec", "-n", "dev", "toolbox", "--", "echo", "second")
		out := userOutput(r.stderr)
		if r.code == 0 || !strings.Contains(out, "concurrent streams limit exceeded") ||
			!strings.Contains(out, "exec, attach, port-forward, watch or log-follow streams open") || !strings.Contains(out, "kubegate request id") {
			t.Errorf("second exec: exit %d, stdout %q, stderr %q", r.code, r.stdout, out)
		}
		conn.Close()
		// Once the first session has ended, its slot is free again.
		var last result
		if !waitUntil(ctx, func() bool {
			last = kc(t, st.Kubeconfigs["agent"], nil, "exec", "-n", "dev", "toolbox", "--", "echo", "third")
			return last.code == 0
		}) {
			t.Fatalf("exec after the first ended: exit %d %q", last.code, userOutput(last.stderr))
		}
		if strings.TrimSpace(last.stdout) != "third" {
			t.Errorf("third exec printed %q", last.stdout)
		}
	})

	t.Run("a slow body gets 408 and its connection is closed", func(t *testing.T) {
		token := bearerToken(t, st.Kubeconfigs["ci-bot"])
		conn, err := tls.Dial("tcp", u.Host, tlsCfg.Clone())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/v1/namespaces/dev/configmaps HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"apiVersion\":", u.Host, token)
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute)) // a hung test's bound, not a measurement
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no reply to a body that stalled: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		r := reply{code: resp.StatusCode, header: resp.Header, body: string(b)}
		if r.code != http.StatusRequestTimeout || !fromKubegate(r) || statusReason(r.body) != "Timeout" || !strings.Contains(r.body, "the body was not sent within 1s") {
			t.Errorf("got %d %s", r.code, r.body)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the 408: %v, want the connection closed", err)
		}
	})

	t.Run("a stalled TLS handshake is closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute)) // a hung test's bound
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("a connection that never said hello: %v, want the server to close it", err)
		}
	})

	t.Run("each refusal is counted", func(t *testing.T) {
		// The handshake's failure is counted after the connection closes
		// (crypto/tls closes it when the handshake's context ends), so the
		// counters are read until they all show, within a bound.
		counters := []string{
			`kubegate_limit_refusals_total{limit="rate"}`, `kubegate_limit_refusals_total{limit="streams"}`,
			`kubegate_limit_refusals_total{limit="body-timeout"}`, `kubegate_tls_handshake_failures_total{reason="timeout"}`,
		}
		var missing []string
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		waitUntil(ctx, func() bool {
			resp, err := http.Get(st.AdminURL + "/metrics")
			if err != nil {
				missing = []string{err.Error()}
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			missing = missing[:0]
			for _, m := range counters {
				mm := regexp.MustCompile(regexp.QuoteMeta(m) + ` (\d+)`).FindSubmatch(b)
				if mm == nil {
					missing = append(missing, m+" absent")
				} else if n, _ := strconv.Atoi(string(mm[1])); n < 1 {
					missing = append(missing, m+" = "+string(mm[1]))
				}
			}
			return len(missing) == 0
		})
		for _, m := range missing {
			t.Errorf("%s, want at least 1", m)
		}
	})
}

// restClient is an HTTP client with the kubeconfig's credential, and the
// server's base URL. client-go's rest.Request is not used: it would wait
// out a 429's Retry-After and try again.
func restClient(t *testing.T, kubeconfig string) (*http.Client, string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 30 * time.Second
	return c, cfg.Host
}

// bearerToken is the static token in a kubeconfig.
func bearerToken(t *testing.T, kubeconfig string) string {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BearerToken == "" {
		t.Fatalf("%s has no bearer token", kubeconfig)
	}
	return cfg.BearerToken
}
