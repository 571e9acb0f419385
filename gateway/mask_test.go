package gateway

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/policy"
)

const plantedSecret = "c2VjcmV0LXZhbHVlLTQy" // base64 of secret-value-42
const plantedJWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl"

// allowAll allows everything.
type allowAll struct{}

func (allowAll) Decide(policy.Input) policy.Decision {
	return policy.Decision{Action: policy.Allow, Rule: "all"}
}

// groupAuthn authenticates "Bearer <user>"; user "breakglass" is in group
// sre.
type groupAuthn struct{}

func (groupAuthn) Authenticate(_ context.Context, r *http.Request) (*identity.Principal, error) {
	user, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if user == "" {
		return nil, identity.ErrNoToken
	}
	if user == "breakglass" {
		return &identity.Principal{User: user, Groups: []string{"sre"}}, nil
	}
	return &identity.Principal{User: user, Groups: []string{"agents"}}, nil
}

func newMaskGateway(t *testing.T, upstream http.HandlerFunc) (string, *memSink) {
	t.Helper()
	up := httptest.NewTLSServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultRules: true, DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	g, err := New(Config{Upstream: u, Transport: up.Client().Transport, Authenticator: groupAuthn{}, Policy: allowAll{},
		Audit: sink, Masker: m, MaskExemptGroups: []string{"sre"}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g)
	t.Cleanup(front.Close)
	return front.URL, sink
}

func get(t *testing.T, url, user string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, _ := io.ReadAll(r)
	return resp, string(b)
}

func TestMaskingResponses(t *testing.T) {
	secretJSON := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"prod"},"data":{"password":"` + plantedSecret + `"},"type":"Opaque"}`
	base, sink := newMaskGateway(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("watch") == "true":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			for _, typ := range []string{"ADDED", "MODIFIED"} {
				fmt.Fprintf(w, `{"type":%q,"object":%s}`+"\n", typ, secretJSON)
				w.(http.Flusher).Flush()
			}
		case strings.HasSuffix(r.URL.Path, "/log"):
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "starting\ntoken=%s\ndone\n", plantedJWT)
		case strings.HasSuffix(r.URL.Path, "/broken"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"apiVersion":"v1","kind":"Secret","data":{"password":"`+plantedSecret)
		default:
			// Compress when asked, as the apiserver does. Go's transport
			// asks by itself and decompresses; had the client's own
			// Accept-Encoding reached here, kubegate would get gzip it
			// could not mask.
			w.Header().Set("Content-Type", "application/json")
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				fmt.Fprint(zw, secretJSON)
				zw.Close()
				return
			}
			fmt.Fprint(w, secretJSON)
		}
	})
	for _, tc := range []struct {
		name, path, user string
		wantCode         int
		raw              bool
	}{
		{"get secret", "/api/v1/namespaces/prod/secrets/db", "agent", 200, false},
		{"watch secrets", "/api/v1/namespaces/prod/secrets?watch=true", "agent", 200, false},
		{"pod logs", "/api/v1/namespaces/prod/pods/web/log", "agent", 200, false},
		{"truncated body fails closed", "/api/v1/namespaces/prod/secrets/broken", "agent", 502, false},
		{"exempt group sees raw", "/api/v1/namespaces/prod/secrets/db", "breakglass", 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, base+tc.path, tc.user)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			leaked := strings.Contains(body, plantedSecret) || strings.Contains(body, plantedJWT)
			if leaked != tc.raw {
				t.Fatalf("raw values in the body: %v, want %v:\n%s", leaked, tc.raw, body)
			}
		})
	}
	// The exempt read is audited as such; stored copies never hold values.
	ev := sink.find(func(a map[string]string) bool { return a["kubegate.dev/mask-exempt"] == "sre" })
	if ev == nil {
		t.Errorf("no audit event marks the exempt read")
	}
	if ev := sink.find(func(a map[string]string) bool { return a["kubegate.dev/mask-error"] != "" }); ev == nil {
		t.Errorf("no audit event records the withheld response")
	}
}

// TestMaskingWatchIsStreamed: each watch event reaches the client before
// the upstream sends the next.
func TestMaskingWatchIsStreamed(t *testing.T) {
	next := make(chan struct{})
	base, _ := newMaskGateway(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		for i := range 3 {
			fmt.Fprintf(w, `{"type":"ADDED","object":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s%d"},"data":{"k":"%s"}}}`+"\n", i, plantedSecret)
			w.(http.Flusher).Flush()
			<-next
		}
	})
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/namespaces/prod/secrets?watch=true", nil)
	req.Header.Set("Authorization", "Bearer agent")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for i := range 3 {
		if !lines.Scan() {
			t.Fatalf("event %d never arrived: %v", i, lines.Err())
		}
		if strings.Contains(lines.Text(), plantedSecret) || !strings.Contains(lines.Text(), fmt.Sprintf(`"s%d"`, i)) {
			t.Fatalf("event %d: %s", i, lines.Text())
		}
		next <- struct{}{}
	}
}

func TestMaskText(t *testing.T) {
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: Config{Masker: m}}
	got := g.maskText(`exec pods "web": "curl -H 'Authorization: Bearer abcdefghijklmnop' x"`)
	if strings.Contains(got, "abcdefghijklmnop") || !strings.Contains(got, k8swire.MaskMarker) {
		t.Errorf("maskText = %q", got)
	}
	if got := (&Gateway{}).maskText("plain"); got != "plain" {
		t.Errorf("without a masker: %q", got)
	}
}

func TestMaskTargetLeavesTheRequestAlone(t *testing.T) {
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: Config{Masker: m}}
	argv := []string{"curl", "-H", "Authorization: Bearer abcdefghijklmnop"}
	req := &k8swire.Request{Verb: "create", Resource: "pods", Subresource: "exec", Stream: &k8swire.Stream{Command: argv}}
	got := g.maskTarget(target(req))
	if strings.Contains(strings.Join(got.Command, " "), "abcdefghijklmnop") {
		t.Errorf("stored argv %q", got.Command)
	}
	if argv[2] != "Authorization: Bearer abcdefghijklmnop" {
		t.Errorf("the forwarded argv changed: %q", argv)
	}
}
