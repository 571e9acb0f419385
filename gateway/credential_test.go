package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/identity"
)

// credentialFor takes the authenticator's hash only where the gateway's own
// would be the same; otherwise the audit annotation is what it always was.
func TestCredentialFor(t *testing.T) {
	tok := strings.Repeat("x", 900)
	for _, tc := range []struct {
		name, header string
		reused       bool
	}{
		{"canonical", "Bearer " + tok, true},
		{"lower-case scheme", "bearer " + tok, false},
		{"two spaces", "Bearer  " + tok, false},
		{"trailing space", "Bearer " + tok + " ", false},
		{"no token", "Bearer ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api", nil)
			r.Header.Set("Authorization", tc.header)
			canonical := httptest.NewRequest("GET", "/api", nil)
			canonical.Header.Set("Authorization", "Bearer "+tok)
			p := &identity.Principal{Credential: credentialID(canonical)}
			if p.Credential == "" {
				t.Fatal("no credential id for the canonical header")
			}
			got := credentialFor(r, &identity.Principal{Credential: "sha256:from-authenticator"})
			if tc.reused {
				if got != "sha256:from-authenticator" {
					t.Fatalf("credentialFor = %q, want the authenticator's", got)
				}
				if credentialFor(r, p) != credentialID(r) {
					t.Fatal("the authenticator's id differs from the gateway's for the same token")
				}
				return
			}
			if want := credentialID(r); got != want {
				t.Fatalf("credentialFor = %q, want the gateway's own %q", got, want)
			}
		})
	}
}

// BenchmarkCredentialFor compares hashing a JWT-sized token again
// (credentialID) with taking the authenticator's hash (credentialFor).
func BenchmarkCredentialFor(b *testing.B) {
	r := httptest.NewRequest("GET", "/api", nil)
	r.Header.Set("Authorization", "Bearer "+strings.Repeat("x", 900))
	p := &identity.Principal{Credential: credentialID(r)}
	b.Run("rehash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = credentialID(r)
		}
	})
	b.Run("reuse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = credentialFor(r, p)
		}
	})
}
