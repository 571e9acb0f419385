package identity

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkAuthenticateCached is the steady state: a token already verified.
func BenchmarkAuthenticateCached(b *testing.B) {
	g := newGateway(b, nil)
	r := bearer(g.sa.sign(b, jose.RS256, g.sa.saClaims(g.clock.Now(), nil)))
	ctx := context.Background()
	if _, err := g.a.Authenticate(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.a.Authenticate(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateUncached verifies a fresh token each time (ES256):
// the cost of a cache miss.
func BenchmarkAuthenticateUncached(b *testing.B) {
	g := newGateway(b, nil)
	ctx := context.Background()
	if err := g.a.Ready(ctx); err != nil {
		b.Fatal(err)
	}
	tok := g.idp.sign(b, jose.ES256, g.idp.claims(g.clock.Now(), nil))
	is := g.a.issuers[g.idp.url]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.verify(ctx, tok, g.clock.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
