package gateway

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/k8swire"
)

// TestAuditRequestURI: a stored request URI keeps no credential: a token
// parameter, a JWT anywhere in the query (refused requests are audited
// too) and a value the masker's patterns match are replaced, everything
// else is kept as it came.
func TestAuditRequestURI(t *testing.T) {
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLWEtdG9rZW4"
	for _, tc := range []struct{ in, want, gone string }{
		{"/api/v1/pods?watch=true&resourceVersion=7", "/api/v1/pods?watch=true&resourceVersion=7", ""},
		{"/api/v1/pods?access_token=s3cr3t-value&limit=5", "/api/v1/pods?access_token=REDACTED&limit=5", "s3cr3t-value"},
		{"/api/v1/namespaces/dev/pods/x/exec?command=echo&command=" + jwt, "/api/v1/namespaces/dev/pods/x/exec?command=echo&command=REDACTED", "c2lnbmF0dXJl"},
		{"/api/v1/namespaces/dev/pods/x/exec?command=curl&command=-H&command=Authorization%3A+Bearer+0123456789abcdefXYZ0123", "", "0123456789abcdefXYZ0123"},
	} {
		u, err := url.ParseRequestURI(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []*Gateway{{cfg: Config{Masker: m}}, {}} {
			got := g.auditRequestURI(u)
			if tc.want != "" && got != tc.want {
				t.Errorf("masker %t: %s stored as %s, want %s", g.cfg.Masker != nil, tc.in, got, tc.want)
			}
			if tc.gone != "" && strings.Contains(got, tc.gone) && (g.cfg.Masker != nil || tc.want != "") {
				t.Errorf("masker %t: %s stored as %s", g.cfg.Masker != nil, tc.in, got)
			}
		}
	}
}

// TestMaskedRequest: the argv a recording stores is masked; the request's
// own argv, forwarded upstream, is not touched.
func TestMaskedRequest(t *testing.T) {
	m, err := k8swire.NewMasker(k8swire.MaskConfig{DefaultPatterns: true})
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"curl", "-H", "Authorization: Bearer 0123456789abcdefXYZ0123"}
	req := k8swire.Request{Subresource: "exec", Stream: &k8swire.Stream{Command: argv}}
	got := (&Gateway{cfg: Config{Masker: m}}).maskedRequest(req)
	if strings.Contains(strings.Join(got.Stream.Command, " "), "0123456789abcdefXYZ0123") || got.Stream.Command[0] != "curl" {
		t.Errorf("stored argv %q", got.Stream.Command)
	}
	if req.Stream.Command[2] != "Authorization: Bearer 0123456789abcdefXYZ0123" {
		t.Errorf("the forwarded argv changed: %q", req.Stream.Command)
	}
}
