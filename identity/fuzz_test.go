package identity

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAuthenticate sends arbitrary Authorization headers and query strings,
// seeded from TestAuthenticate's table, to an Authenticator with real
// issuers. It must never panic, must return a principal only with no error,
// and every error must wrap a sentinel and not repeat the token.
func FuzzAuthenticate(f *testing.F) {
	g := newGateway(f, nil)
	if err := g.a.Ready(context.Background()); err != nil {
		f.Fatal(err)
	}
	for _, c := range authCases(f, g) {
		auth := "Bearer " + c.token
		if c.header != nil {
			auth = strings.Join(c.header, ",")
		}
		f.Add(auth, c.query)
	}
	f.Fuzz(func(t *testing.T, auth, query string) {
		r := httptest.NewRequest(http.MethodGet, "https://gateway.test/api", nil)
		r.URL.RawQuery = query
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		p, err := g.a.Authenticate(context.Background(), r)
		if err == nil {
			if p == nil || p.User == "" || (p.Issuer != g.idp.url && p.Issuer != g.sa.url) {
				t.Fatalf("success with principal %+v", p)
			}
			return
		}
		if p != nil {
			t.Fatalf("principal %+v with error %v", p, err)
		}
		if !isSentinel(err) {
			t.Fatalf("error %q wraps no sentinel", err)
		}
		_, tok, _ := strings.Cut(auth, " ")
		if len(tok) >= 32 && !strings.ContainsAny(tok, " \t\r\n") && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q contains the token", err)
		}
	})
}

// FuzzPeek parses arbitrary tokens without verifying them, seeded from
// TestAuthenticate's table.
func FuzzPeek(f *testing.F) {
	g := newGateway(f, nil)
	for _, c := range authCases(f, g) {
		f.Add(c.token)
	}
	f.Fuzz(func(t *testing.T, token string) {
		u, err := peek(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %q does not wrap ErrInvalidToken", err)
			}
			if len(token) >= 32 && strings.Contains(err.Error(), token) {
				t.Fatalf("error %q contains the token", err)
			}
			return
		}
		if u.iss == "" || strings.Count(token, ".") != 2 {
			t.Fatalf("peek(%q) = %+v without error", token, u)
		}
	})
}
