package gateway

import (
	"net/http"
	"slices"
	"testing"

	"github.com/kubegate/kubegate/identity"
)

// escapeExtraKey keeps keys of token characters as they are and
// percent-encodes every other byte, and '%' itself, as client-go does.
func TestEscapeExtraKey(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "",
		"scopes":                                "scopes",
		"example.com/team":                      "example.com%2Fteam",
		"authentication.kubernetes.io/pod-name": "authentication.kubernetes.io%2Fpod-name",
		"a%b":                                   "a%25b",
		"sp ace":                                "sp%20ace",
		"é":                                     "%C3%A9",
		"\xff":                                  "%FF",
		"!#$&'*+-.^_`|~09AZaz":                  "!#$&'*+-.^_`|~09AZaz",
	} {
		if got := escapeExtraKey(in); got != want {
			t.Errorf("escapeExtraKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// The impersonation headers share the principal's groups, but an Add to
// the header does not write into them.
func TestSetImpersonationGroups(t *testing.T) {
	groups := make([]string, 2, 8)
	copy(groups, []string{"a", "b"})
	p := &identity.Principal{User: "u", Groups: groups}
	h := http.Header{}
	setImpersonation(h, p)
	if got := h.Values("Impersonate-Group"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Impersonate-Group = %q", got)
	}
	h.Add("Impersonate-Group", "c")
	if got := groups[:3]; got[2] != "" {
		t.Fatalf("Add wrote into the principal's groups: %q", got)
	}
	h = http.Header{}
	setImpersonation(h, &identity.Principal{User: "u"})
	if _, ok := h["Impersonate-Group"]; ok {
		t.Fatalf("Impersonate-Group set for a principal without groups: %q", h)
	}
}
