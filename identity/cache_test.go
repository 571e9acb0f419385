package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func key(s string) tokenKey { return sha256.Sum256([]byte(s)) }

func TestTokenCache(t *testing.T) {
	t0 := time.Unix(1893456000, 0)
	p := func(user string) *Principal { return &Principal{User: user, Groups: []string{"g"}} }
	tests := []struct {
		name string
		run  func(c *tokenCache) error
	}{
		{"hit before expiry", func(c *tokenCache) error {
			c.put(key("a"), p("a"), t0.Add(time.Minute))
			if got, ok := c.get(key("a"), t0.Add(time.Minute-time.Nanosecond)); !ok || got.User != "a" {
				return fmt.Errorf("get = %v, %v; want a", got, ok)
			}
			return nil
		}},
		{"miss at and after expiry, and the entry is dropped", func(c *tokenCache) error {
			c.put(key("a"), p("a"), t0.Add(time.Minute))
			if _, ok := c.get(key("a"), t0.Add(time.Minute)); ok {
				return errors.New("expired entry returned")
			}
			if n := c.len(); n != 0 {
				return fmt.Errorf("len = %d after an expired get, want 0", n)
			}
			return nil
		}},
		{"least recently used is evicted", func(c *tokenCache) error {
			c.put(key("a"), p("a"), t0.Add(time.Hour))
			c.put(key("b"), p("b"), t0.Add(time.Hour))
			c.get(key("a"), t0) // a is now more recent than b
			c.put(key("c"), p("c"), t0.Add(time.Hour))
			if _, ok := c.get(key("b"), t0); ok {
				return errors.New("b survived; it was least recently used")
			}
			for _, k := range []string{"a", "c"} {
				if _, ok := c.get(key(k), t0); !ok {
					return fmt.Errorf("%s was evicted", k)
				}
			}
			return nil
		}},
		{"put replaces", func(c *tokenCache) error {
			c.put(key("a"), p("a"), t0.Add(time.Minute))
			c.put(key("a"), p("a2"), t0.Add(time.Hour))
			if got, ok := c.get(key("a"), t0.Add(2*time.Minute)); !ok || got.User != "a2" || c.len() != 1 {
				return fmt.Errorf("get = %v, %v (len %d); want a2, one entry", got, ok, c.len())
			}
			return nil
		}},
		{"get returns copies", func(c *tokenCache) error {
			c.put(key("a"), p("a"), t0.Add(time.Hour))
			got, _ := c.get(key("a"), t0)
			got.User, got.Groups[0] = "mallory", "admins"
			if again, _ := c.get(key("a"), t0); again.User != "a" || again.Groups[0] != "g" {
				return fmt.Errorf("cached principal changed to %+v", again)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(newTokenCache(2)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A token verified once is served from the cache: the issuer is not asked
// again, and callers get copies they may change.
func TestAuthenticateCacheHit(t *testing.T) {
	g := newGateway(t, func(c *Config) { c.CacheSize = 4 })
	ctx := context.Background()
	now := g.clock.Now()
	tok := g.sa.sign(t, jose.RS256, g.sa.saClaims(now, nil))
	first, err := g.a.Authenticate(ctx, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.a.cache.get(key(tok), now); !ok {
		t.Fatal("verified token not cached")
	}
	sum := sha256.Sum256([]byte(tok))
	if want := "sha256:" + hex.EncodeToString(sum[:8]); first.Credential != want {
		t.Fatalf("Credential = %q, want %q", first.Credential, want)
	}
	// Take the issuer's keys away: from here on, only the cache can say yes.
	is := g.a.issuers[g.sa.url]
	is.mu.Lock()
	is.keys = nil
	is.mu.Unlock()

	first.Groups[0] = "system:masters"
	first.Extra["authentication.kubernetes.io/pod-name"][0] = "other"
	for range 100 {
		p, err := g.a.Authenticate(ctx, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		if p.Groups[0] != "system:serviceaccounts" || p.Extra["authentication.kubernetes.io/pod-name"][0] != "web-0" {
			t.Fatalf("cached principal was changed through a returned copy: %+v", p)
		}
		if p.Credential != first.Credential {
			t.Fatalf("cached principal's Credential %q, first %q", p.Credential, first.Credential)
		}
	}
	// Many distinct tokens: one key set fetch in all, and the cache stays
	// within its size.
	for i := range 10 {
		tok := g.idp.sign(t, jose.ES256, g.idp.claims(now, map[string]any{"jti": i}))
		if _, err := g.a.Authenticate(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ti := range []*testIssuer{g.idp, g.sa} {
		if d, k := ti.discoveryHits.Load(), ti.keysHits.Load(); d != 1 || k != 1 {
			t.Errorf("%s: %d discovery and %d key set fetches, want 1 and 1", ti.url, d, k)
		}
	}
	if n := g.a.cache.len(); n != 4 {
		t.Errorf("cache holds %d entries, want its size 4", n)
	}
}

// A cached token is not served past its exp, nor past the cache's cap.
func TestAuthenticateCacheExpiry(t *testing.T) {
	g := newGateway(t, nil)
	ctx := context.Background()
	start := g.clock.Now()

	short := g.idp.sign(t, jose.RS256, g.idp.claims(start, map[string]any{"exp": start.Add(2 * time.Minute).Unix()}))
	long := g.idp.sign(t, jose.RS256, g.idp.claims(start, map[string]any{"exp": start.Add(time.Hour).Unix()}))
	for _, tok := range []string{short, long} {
		if _, err := g.a.Authenticate(ctx, bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}

	// Just past exp: the entry is gone, and the token still passes only
	// because of the 30s skew.
	g.clock.Advance(2*time.Minute + time.Second)
	if _, ok := g.a.cache.get(key(short), g.clock.Now()); ok {
		t.Fatal("cache served a token past its exp")
	}
	if _, err := g.a.Authenticate(ctx, bearer(short)); err != nil {
		t.Fatalf("token within skew of exp: %v", err)
	}
	g.clock.Advance(30 * time.Second)
	if _, err := g.a.Authenticate(ctx, bearer(short)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token past exp and skew: %v, want ErrInvalidToken", err)
	}

	// Past the cap: the long-lived token is verified again, and cached again.
	g.clock.Advance(maxCacheTTL - 2*time.Minute - 31*time.Second)
	if _, ok := g.a.cache.get(key(long), g.clock.Now()); ok {
		t.Fatal("cache served a token past its cap")
	}
	if _, err := g.a.Authenticate(ctx, bearer(long)); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.a.cache.get(key(long), g.clock.Now()); !ok {
		t.Fatal("re-verified token not cached again")
	}
}
