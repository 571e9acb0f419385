package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// attackKit is what every attack case needs: kubegate, the cluster behind
// it, HTTP/1.1 and raw TLS clients, and tokens for the test identities.
type attackKit struct {
	g   *gatewayEnv
	env *testenv.Env
	// host is kubegate's host:port.
	host   string
	tlsCfg *tls.Config
	// client speaks HTTP/1.1 only and trusts the env's CA.
	client *http.Client
	// agent is a Dex ID token of agent; bot a ServiceAccount token of
	// dev/ci-bot (audience kubegate).
	agent, bot string
	// victim is a ConfigMap in prod that deletes must not reach; secret is
	// a Secret in prod whose value must never come back.
	victim, secretValue string
	// slowloris reports how a connection that never finished its headers,
	// opened when the kit was made, ended: nil once the server closed it.
	slowloris chan error
	// slowBody reports how a request whose body never arrived in full,
	// sent when the kit was made, ended: nil for kubegate's 408 and a
	// closed connection.
	slowBody chan error
}

// The prod objects the cases aim at.
const (
	attackVictim = "attack-victim"
	attackSecret = "attack-secret"
)

// TestAttackMatrix sends every attack through kubegate at the real
// apiserver and checks the exact outcome, and that the forbidden thing did
// not happen.
func TestAttackMatrix(t *testing.T) {
	k := newAttackKit(t)
	classes := []struct {
		name string
		run  func(t *testing.T, k *attackKit) int
	}{
		{"tokens", attackTokens},
		{"header smuggling", attackHeaders},
		{"paths and classification", attackPaths},
		{"request smuggling", attackSmuggling},
		{"resource exhaustion", attackExhaustion},
		{"TLS and admin endpoints", attackTLSAndAdmin},
	}
	total := 0
	var counts []string
	for _, c := range classes {
		n := 0
		t.Run(c.name, func(t *testing.T) { n = c.run(t, k) })
		total += n
		counts = append(counts, fmt.Sprintf("%s %d", c.name, n))
	}
	k.checkVictims(t)
	t.Logf("attack matrix: %d cases run (%s)", total, strings.Join(counts, ", "))
}

func newAttackKit(t *testing.T) *attackKit {
	t.Helper()
	g := gateway(t)
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	u, err := url.Parse(g.url)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	tlsCfg := &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
	k := &attackKit{
		g: g, env: env, host: u.Host, tlsCfg: tlsCfg,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()}},
		victim: attackVictim, secretValue: "attack-secret-value-" + fmt.Sprint(time.Now().UnixNano()),
	}
	k.slowloris = make(chan error, 1)
	go func() { k.slowloris <- k.slowHeaders() }()
	k.slowBody = make(chan error, 1)
	if k.agent, err = env.Dex.Token(ctx, "agent"); err != nil {
		t.Fatal(err)
	}
	go func() { k.slowBody <- k.slowBodySend() }()
	if k.bot, err = env.ServiceAccountToken(ctx, "dev", "ci-bot", "kubegate", time.Hour); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: attackVictim, Namespace: "prod"}, Data: map[string]string{"k": "v"}}
	if _, err := env.Client.CoreV1().ConfigMaps("prod").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: attackSecret, Namespace: "prod"}, StringData: map[string]string{"password": k.secretValue}}
	if _, err := env.Client.CoreV1().Secrets("prod").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		old, err := env.Client.CoreV1().Secrets("prod").Get(ctx, attackSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k.secretValue = string(old.Data["password"])
	}
	return k
}

// checkVictims fails if the prod ConfigMap is gone: some delete got through.
func (k *attackKit) checkVictims(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := k.env.Client.CoreV1().ConfigMaps("prod").Get(ctx, attackVictim, metav1.GetOptions{}); err != nil {
		t.Fatalf("configmap prod/%s: %v (a denied delete reached the apiserver)", attackVictim, err)
	}
}

// reply is one HTTP answer, read in full.
type reply struct {
	code   int
	header http.Header
	body   string
}

// send makes one request through kubegate over HTTP/1.1 with the bearer
// token (none if empty) and extra headers.
func (k *attackKit) send(t *testing.T, method, path, token string, body io.Reader, hdr http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+k.host+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for name, vs := range hdr {
		req.Header[name] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return reply{code: resp.StatusCode, header: resp.Header} // a stream was opened: the case has failed already
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return reply{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// raw writes bytes to a new TLS connection to kubegate (ALPN http/1.1)
// and reads responses until the server closes the connection or the
// deadline passes. After n responses it waits only a moment for an extra
// one (a smuggled request's answer would be one).
func (k *attackKit) raw(t *testing.T, payload string, n int, deadline time.Duration) ([]reply, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", k.host, k.tlsCfg.Clone())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(deadline)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, payload); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	var out []reply
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF || isTimeout(err) || len(out) > 0 {
				return out, nil
			}
			return out, err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		out = append(out, reply{code: resp.StatusCode, header: resp.Header, body: string(b)})
		if resp.Close || resp.StatusCode == http.StatusSwitchingProtocols {
			return out, nil
		}
		if len(out) >= n {
			if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
				return out, nil
			}
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// whoami asks the apiserver, through kubegate, who it thinks the caller is
// (a SelfSubjectReview), with extra headers.
func (k *attackKit) whoami(t *testing.T, token string, hdr http.Header) (reply, string, []string) {
	t.Helper()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Type", "application/json")
	r := k.send(t, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token,
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`), hdr)
	var ssr struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if r.code == http.StatusCreated {
		if err := json.Unmarshal([]byte(r.body), &ssr); err != nil {
			t.Fatalf("selfsubjectreview: %v: %s", err, r.body)
		}
	}
	return r, ssr.Status.UserInfo.Username, ssr.Status.UserInfo.Groups
}

// fromKubegate reports whether kubegate itself answered (not the apiserver):
// kubegate's refusals carry its request id in a Status, and the apiserver's
// never mention kubegate.
func fromKubegate(r reply) bool {
	return r.header.Get("X-Kubegate-Request-Id") != "" && strings.Contains(r.body, "kubegate")
}

// statusReason decodes a Status body's reason ("" if it is not a Status).
func statusReason(body string) metav1.StatusReason {
	var st metav1.Status
	if json.Unmarshal([]byte(body), &st) != nil || st.Kind != "Status" {
		return ""
	}
	return st.Reason
}

// containsAny reports whether s contains any of subs.
func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// repeat builds n bytes of a header-safe filler.
func repeat(c byte, n int) string { return string(bytes.Repeat([]byte{c}, n)) }

// slowHeaders opens a connection, sends part of a request's headers and
// never the rest, and returns nil once the server closes the connection
// without answering 200. The bound (25s) is tlsfront's default read-header
// timeout (10s) plus slack for a loaded machine, not a measurement.
func (k *attackKit) slowHeaders() error {
	conn, err := tls.Dial("tcp", k.host, k.tlsCfg.Clone())
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /api/v1/namespaces/dev/pods HTTP/1.1\r\nHost: "+k.host+"\r\nX-Slow: "); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(25 * time.Second))
	b, err := io.ReadAll(conn)
	if isTimeout(err) {
		return fmt.Errorf("the server kept the connection open past its read-header timeout (read %q)", b)
	}
	if strings.Contains(string(b), " 200 ") {
		return fmt.Errorf("an unfinished request was answered: %q", b)
	}
	return nil
}

// slowBodySend sends a create whose body stops after its first bytes, and
// returns nil once kubegate answered 408 and closed the connection. The
// bound (60s) is the test node's body read timeout (5s) plus slack.
func (k *attackKit) slowBodySend() error {
	conn, err := tls.Dial("tcp", k.host, k.tlsCfg.Clone())
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "POST /api/v1/namespaces/dev/configmaps HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"apiVersion\":", k.host, k.agent)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("no answer to a body that stalled: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, body: string(b)}
	if r.code != http.StatusRequestTimeout || !fromKubegate(r) || statusReason(r.body) != metav1.StatusReasonTimeout {
		return fmt.Errorf("a stalled body got %d %.300s, want kubegate's 408", r.code, r.body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("after the 408: %v, want the connection closed", err)
	}
	return nil
}
