package identity

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// syncBuffer is a log destination that tests may read while the code under
// test writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestIssuerDownAtStartupThenUp(t *testing.T) {
	var logs syncBuffer
	g := newGateway(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	g.idp.down.Store(true)
	ctx := context.Background()
	tok := g.idp.sign(t, jose.RS256, g.idp.claims(g.clock.Now(), nil))

	err := g.a.Ready(ctx)
	if !errors.Is(err, ErrIssuerUnavailable) || !strings.Contains(err.Error(), "test-oidc") {
		t.Fatalf("Ready with the IdP down: %v, want ErrIssuerUnavailable naming test-oidc", err)
	}
	// The ServiceAccount issuer is up and works meanwhile.
	saTok := g.sa.sign(t, jose.ES256, g.sa.saClaims(g.clock.Now(), nil))
	if _, err := g.a.Authenticate(ctx, bearer(saTok)); err != nil {
		t.Fatalf("ServiceAccount token while the IdP is down: %v", err)
	}
	for range 5 {
		p, err := g.a.Authenticate(ctx, bearer(tok))
		if !errors.Is(err, ErrIssuerUnavailable) || p != nil {
			t.Fatalf("Authenticate with the IdP down = %v, %v; want ErrIssuerUnavailable", p, err)
		}
		checkNoLeak(t, err, tok)
	}
	if n := g.idp.discoveryHits.Load(); n != 1 {
		t.Errorf("%d discovery attempts within one second, want 1", n)
	}

	g.idp.down.Store(false)
	if err := g.a.Ready(ctx); !errors.Is(err, ErrIssuerUnavailable) {
		t.Errorf("Ready in the same second: %v, want the last attempt's ErrIssuerUnavailable", err)
	}
	g.clock.Advance(minRefreshInterval)
	if err := g.a.Ready(ctx); err != nil {
		t.Fatalf("Ready after the IdP came up: %v", err)
	}
	if _, err := g.a.Authenticate(ctx, bearer(tok)); err != nil {
		t.Fatalf("Authenticate after the IdP came up: %v", err)
	}
	if n := g.idp.discoveryHits.Load(); n != 2 {
		t.Errorf("%d discovery attempts, want 2", n)
	}

	out := logs.String()
	for _, want := range []string{"issuer unavailable", "issuer keys loaded"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{tok, strings.Split(tok, ".")[1], saTok[:40]} {
		if strings.Contains(out, secret) {
			t.Fatal("logs contain a token")
		}
	}
}

func TestKeySetDown(t *testing.T) {
	g := newGateway(t, nil)
	g.idp.keysDown.Store(true)
	ctx := context.Background()
	if err := g.a.Ready(ctx); !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("Ready with the key set down: %v, want ErrIssuerUnavailable", err)
	}
	tok := g.idp.sign(t, jose.RS256, g.idp.claims(g.clock.Now(), nil))
	if _, err := g.a.Authenticate(ctx, bearer(tok)); !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("Authenticate with the key set down: %v, want ErrIssuerUnavailable", err)
	}
	g.idp.keysDown.Store(false)
	g.clock.Advance(minRefreshInterval)
	if _, err := g.a.Authenticate(ctx, bearer(tok)); err != nil {
		t.Fatalf("Authenticate after the key set came up: %v", err)
	}
	if err := g.a.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// A token signed with a key the issuer has just published is accepted once a
// refetch is due; tokens with unknown key IDs cause at most one refetch per
// interval however many arrive.
func TestKeyRotation(t *testing.T) {
	g := newGateway(t, nil)
	ctx := context.Background()
	if err := g.a.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := newRSAKey(t)
	g.idp.publish(jose.JSONWebKey{Key: &fresh.PublicKey, KeyID: "idp-rsa-2", Use: "sig", Algorithm: string(jose.RS256)})
	tok := signWith(t, fresh, "idp-rsa-2", jose.RS256, g.idp.claims(g.clock.Now(), nil))

	if _, err := g.a.Authenticate(ctx, bearer(tok)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("new key within a second of the last fetch: %v, want ErrInvalidToken", err)
	}
	g.clock.Advance(minRefreshInterval)
	if _, err := g.a.Authenticate(ctx, bearer(tok)); err != nil {
		t.Fatalf("new key after a refetch: %v", err)
	}
	if n := g.idp.keysHits.Load(); n != 2 {
		t.Errorf("%d key set fetches, want 2", n)
	}

	g.clock.Advance(minRefreshInterval)
	rogue := newECKey(t)
	for i := range 20 {
		tok := signWith(t, rogue, "rogue", jose.ES256, g.idp.claims(g.clock.Now(), map[string]any{"jti": i}))
		if _, err := g.a.Authenticate(ctx, bearer(tok)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown key: %v, want ErrInvalidToken", err)
		}
	}
	if n := g.idp.keysHits.Load(); n != 3 {
		t.Errorf("%d key set fetches after 20 unknown-key tokens, want 3", n)
	}

	// With the key set unreachable, a token under a key not yet seen
	// cannot be judged: the issuer is unavailable, the token not invalid.
	g.idp.keysDown.Store(true)
	g.clock.Advance(minRefreshInterval)
	newer := newRSAKey(t)
	tok = signWith(t, newer, "idp-rsa-3", jose.RS256, g.idp.claims(g.clock.Now(), nil))
	if _, err := g.a.Authenticate(ctx, bearer(tok)); !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("unknown key with the key set down: %v, want ErrIssuerUnavailable", err)
	}
	// Tokens under known keys still verify.
	if _, err := g.a.Authenticate(ctx, bearer(g.idp.sign(t, jose.ES256, g.idp.claims(g.clock.Now(), nil)))); err != nil {
		t.Fatalf("known key with the key set down: %v", err)
	}
}

// Requests arriving together before the issuer was fetched share one fetch.
func TestConcurrentFirstUse(t *testing.T) {
	g := newGateway(t, nil)
	now := g.clock.Now()
	toks := make([]string, 16)
	for i := range toks {
		toks[i] = g.idp.sign(t, jose.ES256, g.idp.claims(now, map[string]any{"jti": i}))
	}
	errs := make([]error, len(toks)*4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = g.a.Authenticate(context.Background(), bearer(toks[i%len(toks)]))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if d, k := g.idp.discoveryHits.Load(), g.idp.keysHits.Load(); d != 1 || k != 1 {
		t.Errorf("%d discovery and %d key set fetches, want 1 and 1", d, k)
	}
}

// A caller whose context ends stops waiting for a slow issuer; the fetch
// itself goes on for the others.
func TestAuthenticateHonoursContext(t *testing.T) {
	g := newGateway(t, nil)
	entered, release := g.idp.hold()
	t.Cleanup(release)
	tok := g.idp.sign(t, jose.RS256, g.idp.claims(g.clock.Now(), nil))

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, err := g.a.Authenticate(ctx, bearer(tok))
	if !errors.Is(err, ErrIssuerUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Authenticate with a cancelled context: %v, want ErrIssuerUnavailable and context.Canceled", err)
	}
	checkNoLeak(t, err, tok)

	release()
	if err := g.a.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after the slow fetch finished: %v", err)
	}
	if n := g.idp.discoveryHits.Load(); n != 1 {
		t.Errorf("%d discovery fetches, want 1", n)
	}
}

// Issuers are fetched lazily: New contacts nobody.
func TestNewDoesNotFetch(t *testing.T) {
	g := newGateway(t, nil)
	if n := g.idp.discoveryHits.Load() + g.sa.discoveryHits.Load(); n != 0 {
		t.Errorf("New made %d discovery fetches, want 0", n)
	}
	g.clock.Advance(time.Hour) // nothing scheduled either
	if n := g.idp.discoveryHits.Load() + g.sa.discoveryHits.Load(); n != 0 {
		t.Errorf("%d discovery fetches without requests, want 0", n)
	}
}
