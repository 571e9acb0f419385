package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubegate/kubegate/internal/testenv"
)

// hygieneValue is a random value of n bytes, hex-encoded.
func hygieneValue(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// hygieneJWT is a JWT-shaped value (what kubegate's default patterns mask
// in exec output) with a random signature.
func hygieneJWT(t *testing.T) string {
	t.Helper()
	sig := make([]byte, 32)
	if _, err := rand.Read(sig); err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"sub":"hygiene","aud":"somewhere-else"}`)) + "." + enc.EncodeToString(sig)
}

// rot13 rotates the letters of s by 13.
func rot13(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return 'a' + (r-'a'+13)%26
		case r >= 'A' && r <= 'Z':
			return 'A' + (r-'A'+13)%26
		}
		return r
	}, s)
}

// TestSecretsHygiene runs a realistic session through kubegate (a child
// process, audit and recording on: the approvals node) with tokens and
// secrets planted everywhere a careless gateway would write them, then
// greps kubegate's whole directory (its log, audit events, recordings,
// cluster state) for every token and secret the suite has used so far,
// as is and in base64: none may be there. The agent reads and describes
// a Secret; creates one (the body holds the value) and, in prod, one that
// is held until an approver approves it; execs commands that print a JWT
// and a bearer token; sends a bearer token in a header of its own; reads
// logs; port-forwards; and kubegate refuses an expired token, a token for
// another audience and a made-up one. TestMain repeats the grep over every
// node of the suite after all tests.
func TestSecretsHygiene(t *testing.T) {
	env := testenv.Get(t)
	a := approvals(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	agent, approver := a.kubeconfig("agent"), a.kubeconfig("approver")
	id := hygieneValue(t, 4)
	note := func(what, v string) string { env.NoteSecret(what, v); return v }

	// A Secret the agent reads, planted past kubegate.
	readValue := note("the data of Secret hygiene-read", "read-"+hygieneValue(t, 16))
	if _, err := env.Client.CoreV1().Secrets("dev").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hygiene-read-" + id},
		StringData: map[string]string{"password": readValue},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"get", "secret", "hygiene-read-" + id, "-o", "yaml"},
		{"get", "secrets", "-o", "json"},
		{"describe", "secret", "hygiene-read-" + id},
	} {
		mustSucceed(t, runKubectl(t, ctx, agent, protocols[0], nil, append([]string{"-n", "dev"}, args...)...), strings.Join(args, " "))
	}

	// Secrets the agent creates: the request bodies hold the values, and
	// the create in prod waits in the cluster state for an approval.
	created := note("the data of Secret hygiene-created", "created-"+hygieneValue(t, 16))
	mustSucceed(t, runKubectl(t, ctx, agent, protocols[0], nil, "-n", "dev", "create", "secret", "generic", "hygiene-created-"+id,
		"--from-literal=token="+created), "create secret in dev")
	held := note("the data of Secret hygiene-held", "held-"+hygieneValue(t, 16))
	create := startKubectl(t, ctx, agent, nil, "-n", "prod", "create", "secret", "generic", "hygiene-held-"+id, "--from-literal=token="+held)
	req := a.waitPending(t, ctx, `create secrets in namespace "prod"`)
	if r := a.kubegate(t, ctx, approver, "approve", req.ID, "--reason", "hygiene"); r.code != 0 {
		t.Fatalf("approve: %s", r.stderr)
	}
	if r := create.wait(t, ctx); r.code != 0 {
		t.Fatalf("the approved create: %s", userOutput(r.stderr))
	}

	// Exec output with a JWT and a bearer token, which the pod makes up
	// from their ROT13 (kubegate refuses a request whose query holds a
	// JWT): the recording and the client get them masked. A bearer token
	// in the command itself reaches the recording's and the audit event's
	// copies of the command masked.
	jwt := note("a JWT printed by exec", hygieneJWT(t))
	bearer := note("a bearer token printed by exec", "bt"+hygieneValue(t, 20))
	argvBearer := note("a bearer token in an exec command", "ab"+hygieneValue(t, 20))
	marker := "hygiene-marker-" + id
	script := fmt.Sprintf("echo %s $(echo %s | tr A-Za-z N-ZA-Mn-za-m); echo Authorization: Bearer $(echo %s | tr A-Za-z N-ZA-Mn-za-m)",
		marker, rot13(jwt), rot13(bearer))
	for _, p := range protocols {
		for _, argv := range [][]string{{"sh", "-c", script}, {"echo", marker, "Authorization: Bearer " + argvBearer}} {
			r := runKubectl(t, ctx, agent, p, nil, append([]string{"-n", "dev", "exec", "toolbox", "--"}, argv...)...)
			mustSucceed(t, r, "exec over "+p.name)
			if !strings.Contains(r.stdout, marker) || strings.Contains(r.stdout, jwt[strings.LastIndexByte(jwt, '.')+1:]) ||
				strings.Contains(r.stdout, bearer) || strings.Contains(r.stdout, argvBearer) {
				t.Errorf("exec over %s: the client saw %q", p.name, r.stdout)
			}
		}
	}
	mustSucceed(t, runKubectl(t, ctx, agent, protocols[0], nil, "-n", "dev", "logs", "toolbox", "--tail=5"), "logs")

	// A bearer token in a header of the client's own, beside a good token.
	agentCfg, err := clientcmd.BuildConfigFromFlags("", agent)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(agentCfg)
	if err != nil {
		t.Fatal(err)
	}
	headerToken := note("a bearer token in X-Upstream-Authorization", "hdr"+hygieneValue(t, 20))
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, agentCfg.Host+"/api/v1/namespaces/dev/pods?labelSelector=x%3D"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("X-Upstream-Authorization", "Bearer "+headerToken)
	resp, err := client.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("list with an extra header: %s", resp.Status)
	}

	// A port-forward.
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(marker)) })}
	go func() { _ = srv.Serve(backend) }()
	defer srv.Close()
	pf := startKubectl(t, ctx, agent, nil, "-n", "dev", "port-forward", "pod/toolbox",
		fmt.Sprintf("0:%d", backend.Addr().(*net.TCPAddr).Port), "--address", "127.0.0.1")
	var local string
	if !waitUntil(ctx, func() bool {
		for _, l := range strings.Split(pf.stdout.String(), "\n") {
			var port int
			if _, err := fmt.Sscanf(l, "Forwarding from 127.0.0.1:%d ->", &port); err == nil {
				local = fmt.Sprintf("127.0.0.1:%d", port)
				return true
			}
		}
		return false
	}) {
		t.Fatalf("port-forward never listened: %s", userOutput(pf.stderr.String()))
	}
	if r, err := http.Get("http://" + local + "/"); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(body) != marker {
			t.Errorf("through the forward: %q", body)
		}
	}
	_ = pf.cmd.Process.Kill()
	pf.wait(t, ctx)

	// Refused tokens: expired, for another audience, made up. Each is
	// noted when its kubeconfig is written.
	dir := t.TempDir()
	fresh, err := env.ServiceAccountToken(ctx, "dev", "ci-bot", "kubegate", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	saKey, _ := saSigningKey(t, env.Dir)
	header, claims := jwtParts(t, fresh)
	kid, _ := header["kid"].(string)
	now := time.Now()
	expired := signRS256(t, saKey, kid, withClaims(claims, map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix()}))
	otherAudience, err := env.ServiceAccountToken(ctx, "dev", "ci-bot", "not-kubegate", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"expired": expired, "other-audience": otherAudience, "made-up": hygieneJWT(t)} {
		path := filepath.Join(dir, name+".kubeconfig")
		if err := env.WriteTokenKubeconfig(path, a.st.URL, "dev", tok); err != nil {
			t.Fatal(err)
		}
		r := runKubectl(t, ctx, path, protocols[0], nil, "get", "pods")
		if r.code == 0 || !strings.Contains(r.stderr, "Unauthorized") && !strings.Contains(r.stderr, "401") {
			t.Errorf("a %s token: exit %d, %s", name, r.code, userOutput(r.stderr))
		}
	}

	// Every token and secret the suite has used so far, in every output
	// noted so far, this node's directory first among them.
	nodeDir := filepath.Dir(a.st.ConfigPath)
	findAuditEvent(t, a.st.AuditPath, func(e auditEvent) bool {
		return e.Annotations["kubegate.dev/access-request"] == req.ID && e.Annotations["kubegate.dev/hold-outcome"] == "approved"
	})
	rep, err := env.CheckHygiene()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rep.Leaks {
		t.Errorf("secret leaked: %s", l)
	}
	// The grep saw what it had to: the node's log, its audit events, and a
	// recording that holds the session's (unsecret) marker.
	var sawLog, sawAudit, sawCast bool
	for _, f := range rep.Files {
		switch {
		case f == filepath.Join(nodeDir, "kubegate.log"):
			sawLog = true
		case f == a.st.AuditPath:
			sawAudit = true
		case strings.HasPrefix(f, nodeDir) && strings.HasSuffix(f, ".cast"):
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
				sawCast = true
			}
		}
	}
	if !sawLog || !sawAudit || !sawCast {
		t.Errorf("the grep missed outputs: log %t, audit %t, a recording of the exec %t (%d files)", sawLog, sawAudit, sawCast, len(rep.Files))
	}
	t.Logf("%d secrets looked for in %d files of kubegate's outputs", rep.Secrets, len(rep.Files))
}
