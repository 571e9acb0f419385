package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// attackHeaders: identity headers a client sends never reach the
// apiserver, and a Connection header cannot remove kubegate's own. The
// oracle is a SelfSubjectReview: the apiserver says whom it served.
func attackHeaders(t *testing.T, k *attackKit) int {
	const refused = "impersonation headers from clients are not accepted"
	cases := []struct {
		name string
		hdr  http.Header
		// refuse means kubegate answers 403 itself; otherwise the review is
		// created and names the agent.
		refuse bool
	}{
		{"Impersonate-User", http.Header{"Impersonate-User": {"system:admin"}}, true},
		{"Impersonate-Group", http.Header{"Impersonate-Group": {"system:masters"}}, true},
		{"Impersonate-Uid", http.Header{"Impersonate-Uid": {"0"}}, true},
		{"Impersonate-Extra-Scopes", http.Header{"Impersonate-Extra-Scopes": {"admin"}}, true},
		{"lower-case impersonate-user", http.Header{"impersonate-user": {"system:admin"}}, true},
		{"Impersonate-User named in Connection too", http.Header{"Connection": {"Impersonate-User"}, "Impersonate-User": {"system:admin"}}, true},
		{"Connection names Impersonate-User", http.Header{"Connection": {"Impersonate-User"}}, false},
		{"Connection names Impersonate-Group and Impersonate-Uid", http.Header{"Connection": {"keep-alive, Impersonate-Group, Impersonate-Uid"}}, false},
		{"Connection names Authorization", http.Header{"Connection": {"Authorization"}}, false},
		{"X-Remote-User and X-Remote-Group", http.Header{"X-Remote-User": {"system:admin"}, "X-Remote-Group": {"system:masters"}}, false},
		{"X-Remote-Extra", http.Header{"X-Remote-User": {"system:admin"}, "X-Remote-Extra-Scopes": {"all"}}, false},
		{"Impersonate_User with an underscore", http.Header{"Impersonate_user": {"system:admin"}}, false},
		{"Proxy-Authorization with an apiserver credential", http.Header{"Proxy-Authorization": {"Bearer " + k.bot}}, false},
		{"X-Forwarded-User", http.Header{"X-Forwarded-User": {"system:admin"}, "X-Forwarded-Groups": {"system:masters"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, user, groups := k.whoami(t, k.agent, tc.hdr)
			if tc.refuse {
				if r.code != http.StatusForbidden || !fromKubegate(r) || !strings.Contains(r.body, refused) {
					t.Fatalf("status %d, want kubegate's 403: %.300s", r.code, r.body)
				}
				return
			}
			if r.code != http.StatusCreated {
				t.Fatalf("selfsubjectreview: %d %.300s", r.code, r.body)
			}
			if user != "agent@kubegate.test" || !containsAny(strings.Join(groups, ","), "dex:agents") || containsAny(strings.Join(groups, ","), "system:masters") {
				t.Errorf("the apiserver served %q %v, want agent@kubegate.test in dex:agents", user, groups)
			}
		})
	}
	// HTTP/2 lower-cases every header name: the refusal must not depend on
	// the spelling.
	t.Run("impersonate-user over HTTP/2", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: k.tlsCfg.Clone(), ForceAttemptHTTP2: true}
		tr.TLSClientConfig.NextProtos = nil
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+k.host+"/api/v1/namespaces/dev/pods", nil)
		req.Header.Set("Authorization", "Bearer "+k.agent)
		req.Header.Set("Impersonate-User", "system:admin")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusForbidden {
			t.Errorf("HTTP/%d %d, want HTTP/2 403", resp.ProtoMajor, resp.StatusCode)
		}
	})
	return len(cases) + 1
}
