package gateway

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"

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
	resp := openAs(t, base+"/api/v1/namespaces/prod/secrets?watch=true", "agent")
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

// openAs sends a GET as user and returns the response, its body unread.
func openAs(t *testing.T, url, user string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestMaskingListsAreStreamed: a large JSON list reaches the client while
// the upstream is still sending it, masked item by item; a small broken list
// gets an error Status; a large one that breaks after it was partly sent is
// cut, and nothing unmasked of it ever arrives.
func TestMaskingListsAreStreamed(t *testing.T) {
	item := func(i int) string {
		return fmt.Sprintf(`{"metadata":{"name":"s%05d","namespace":"prod"},"data":{"password":"%s","pad":"%s"},"type":"Opaque"}`, i, plantedSecret, strings.Repeat("A", 1024))
	}
	const items = 400 // about 450 KiB: past streamListAfter
	release := make(chan struct{})
	base, sink := newMaskGateway(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[`)
		n := items
		if r.URL.Query().Get("labelSelector") == "small" {
			n = 3
		}
		for i := range n {
			if i > 0 {
				fmt.Fprint(w, ",")
			}
			if r.URL.Query().Get("limit") == "broken" && i == n-1 {
				fmt.Fprintf(w, `{"data":{"password":"%s`, plantedSecret) // cut short, then garbage
				fmt.Fprint(w, "\x00}]}")
				return
			}
			fmt.Fprint(w, item(i))
			if i == n-10 && r.URL.Query().Get("limit") == "hold" {
				w.(http.Flusher).Flush()
				<-release // the client must already have the first items
			}
		}
		fmt.Fprint(w, "]}\n")
	})
	list := base + "/api/v1/namespaces/prod/secrets"

	t.Run("streamed before the upstream ends", func(t *testing.T) {
		resp := openAs(t, list+"?limit=hold", "agent")
		defer resp.Body.Close()
		first := make([]byte, 16<<10) // masked items are shorter
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatalf("the first 16 KiB did not arrive while the upstream held the rest: %v", err)
		}
		close(release)
		rest, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Items []struct {
				Data map[string]string `json:"data"`
			} `json:"items"`
		}
		body := append(first, rest...)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("the streamed list does not decode: %v", err)
		}
		if len(got.Items) != items || strings.Contains(string(body), plantedSecret) {
			t.Fatalf("%d items, planted value in the body: %v", len(got.Items), strings.Contains(string(body), plantedSecret))
		}
		if got.Items[0].Data["password"] != k8swire.MaskMarkerBase64 {
			t.Fatalf("password = %q", got.Items[0].Data["password"])
		}
	})
	t.Run("small and broken: a Status", func(t *testing.T) {
		resp, body := get(t, list+"?labelSelector=small&limit=broken", "agent")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `"kind":"Status"`) || strings.Contains(body, plantedSecret) {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("large and broken: cut", func(t *testing.T) {
		resp := openAs(t, list+"?limit=broken", "agent")
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Fatalf("the cut list ended cleanly (%d bytes)", len(body))
		}
		if resp.StatusCode != http.StatusOK || len(body) == 0 || strings.Contains(string(body), plantedSecret) {
			t.Fatalf("status %d, %d bytes, planted value: %v", resp.StatusCode, len(body), strings.Contains(string(body), plantedSecret))
		}
		ev := sink.find(func(a map[string]string) bool { return strings.Contains(a["kubegate.dev/mask-error"], "decoding JSON") })
		if ev == nil {
			t.Fatal("no audit event records the cut list")
		}
	})
}

// readResponse reads the whole body whatever its Content-Length says, and
// one byte past the limit of one that is too long.
func TestReadResponse(t *testing.T) {
	body := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name   string
		length int64
		limit  int64
		want   int
	}{
		{"known", 1000, 4096, 1000},
		{"unknown", -1, 4096, 1000},
		{"announced short", 10, 4096, 1000},
		{"announced long", 3000, 4096, 1000},
		{"over the limit", 1000, 100, 101},
		{"unknown over the limit", -1, 100, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Body: io.NopCloser(iotest.OneByteReader(strings.NewReader(body))), ContentLength: tc.length}
			got, err := readResponse(resp, tc.limit)
			if err != nil || len(got) != tc.want || string(got) != body[:tc.want] {
				t.Fatalf("readResponse = %d bytes, %v; want %d", len(got), err, tc.want)
			}
		})
	}
	resp := &http.Response{Body: io.NopCloser(iotest.ErrReader(io.ErrUnexpectedEOF)), ContentLength: 5}
	if _, err := readResponse(resp, 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("readResponse of a failing body: %v", err)
	}
}
