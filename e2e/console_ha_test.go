package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
)

// consoleClient signs user in to the web console at consoleURL the way a
// browser does: the console sends it to Dex, it posts Dex's login form, and
// Dex sends it back with a code. It returns a client holding the session
// cookie, and the session's CSRF token.
func consoleClient(t *testing.T, ctx context.Context, env *testenv.Env, consoleURL, user string) (*http.Client, string) {
	t.Helper()
	pem, err := os.ReadFile(env.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, string(b)
	}
	get, _ := http.NewRequest(http.MethodGet, consoleURL, nil)
	resp, page := do(get)
	m := regexp.MustCompile(`<form[^>]*action="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no login form at %s (%s):\n%s", resp.Request.URL, resp.Status, page)
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	u := env.Dex.Users[user]
	post, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(url.Values{"login": {u.Email}, "password": {u.Password}}.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := do(post); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), consoleURL) {
		t.Fatalf("signing in as %s ended at %s with %s:\n%s", user, resp.Request.URL, resp.Status, body)
	}
	me, _ := http.NewRequest(http.MethodGet, consoleURL+"api/me", nil)
	resp, body := do(me)
	var v struct{ User, Role, CSRF string }
	if err := json.Unmarshal([]byte(body), &v); err != nil || resp.StatusCode != http.StatusOK || v.User != u.Email {
		t.Fatalf("console /api/me as %s: %s %s", user, resp.Status, body)
	}
	return c, v.CSRF
}

// approvalsStream reads the console's approvals events.
type approvalsStream struct {
	sc *bufio.Scanner
}

type streamRequest struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Summary   string `json:"summary"`
	HeldOn    string `json:"heldOn"`
	CanDecide bool   `json:"canDecide"`
	Approvals []struct {
		By     struct{ User string } `json:"by"`
		Reason string                `json:"reason"`
	} `json:"approvals"`
}

type streamView struct {
	Pending []streamRequest `json:"pending"`
	Decided []streamRequest `json:"decided"`
}

// until reads events until cond holds for one, and returns it.
func (s approvalsStream) until(t *testing.T, what string, cond func(streamView) bool) streamView {
	t.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var v streamView
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
			t.Fatalf("approvals event %q: %v", line, err)
		}
		if cond(v) {
			return v
		}
	}
	t.Fatalf("the approvals stream ended before %s: %v", what, s.sc.Err())
	return streamView{}
}

// TestConsoleHASeesHoldsAndDecisionsOfOtherNodes: the console of node-0
// streams a delete held on node-1 as it is held, and its approval with the
// kubegate CLI through node-2 as it is made; the delete then finishes. An
// auditor signed in to the same console may not approve.
func TestConsoleHASeesHoldsAndDecisionsOfOtherNodes(t *testing.T) {
	env := testenv.Get(t)
	c, err := startHAIn(env, 3, "kubegate-console-ha", true)
	if err != nil {
		t.Fatalf("starting three nodes with a console on node-0: %v", err)
	}
	defer func() {
		for _, n := range c.nodes {
			_ = n.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	client, _ := consoleClient(t, ctx, env, c.nodes[0].ConsoleURL, "approver")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.nodes[0].ConsoleURL+"api/events", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	stream := approvalsStream{bufio.NewScanner(resp.Body)}
	stream.until(t, "the first list", func(streamView) bool { return true })

	mustSucceed(t, runKubectl(t, ctx, c.nodes[0].Kubeconfigs["admin"], protocols[0], nil, "-n", "prod", "create", "configmap", "console-ha-held"), "create configmap")
	start := time.Now()
	del := startKubectl(t, ctx, c.nodes[1].Kubeconfigs["agent"], nil, "-n", "prod", "delete", "configmap", "console-ha-held")
	var held streamRequest
	stream.until(t, "the hold on node-1", func(v streamView) bool {
		for _, r := range v.Pending {
			if strings.Contains(r.Summary, `"console-ha-held"`) {
				held = r
				return true
			}
		}
		return false
	})
	t.Logf("node-0's console streamed the hold on node-1 %s after the delete started", time.Since(start).Round(time.Millisecond))
	if held.HeldOn != "node-1" || !held.CanDecide {
		t.Errorf("held request %+v: want held on node-1 and decidable by the approver", held)
	}
	// An auditor sees the request but cannot decide on it.
	auditor, csrf := consoleClient(t, ctx, env, c.nodes[0].ConsoleURL, "auditor")
	post, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.nodes[0].ConsoleURL+"api/requests/"+held.ID+"/approve", strings.NewReader(`{"reason":"auditors may not"}`))
	post.Header.Set("X-Kubegate-Csrf", csrf)
	aresp, err := auditor.Do(post)
	if err != nil {
		t.Fatal(err)
	}
	aresp.Body.Close()
	if aresp.StatusCode != http.StatusForbidden {
		t.Fatalf("an auditor's approval: %s, want 403", aresp.Status)
	}
	if r := c.kubegate(t, ctx, 2, "approver", "approve", held.ID, "--reason", "through node-2"); r.code != 0 {
		t.Fatalf("approve through node-2: %s", r.stderr)
	}
	v := stream.until(t, "the approval through node-2", func(v streamView) bool {
		for _, r := range v.Decided {
			if r.ID == held.ID {
				return true
			}
		}
		return false
	})
	for _, r := range v.Decided {
		if r.ID == held.ID && (len(r.Approvals) != 1 || r.Approvals[0].By.User != env.Dex.Users["approver"].Email || r.Approvals[0].Reason != "through node-2") {
			t.Errorf("decided request %+v: want approved by the approver, through node-2", r)
		}
	}
	if res := del.wait(t, ctx); res.code != 0 {
		t.Fatalf("the delete held on node-1: exit %d: %s", res.code, userOutput(res.stderr))
	}
	// Node-1 and node-2 serve no console.
	for _, n := range c.nodes[1:] {
		if n.ConsoleURL != "" {
			t.Errorf("node %s serves a console", n.URL)
		}
	}
}
