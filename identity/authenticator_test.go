package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// authCase is one request to Authenticate and what it must give.
type authCase struct {
	name    string
	token   string              // sent as "Bearer <token>" unless header is set
	header  []string            // Authorization header values, instead of token
	query   string              // raw query string
	want    *Principal          // on success
	wantErr error               // a sentinel; nil means success
	secrets []string            // besides the token, strings no error may contain
	mutate  func(*http.Request) // last changes to the request
}

func (c authCase) request() *http.Request {
	r := bearer(c.token)
	if c.header != nil {
		r.Header.Del("Authorization")
		for _, v := range c.header {
			r.Header.Add("Authorization", v)
		}
	}
	r.URL.RawQuery = c.query
	return r
}

// checkAuth runs one case against a and checks the outcome.
func checkAuth(t *testing.T, a *Authenticator, c authCase) {
	t.Helper()
	p, err := a.Authenticate(context.Background(), c.request())
	if c.wantErr != nil {
		if !errors.Is(err, c.wantErr) {
			t.Fatalf("err = %v, want %v", err, c.wantErr)
		}
		if p != nil {
			t.Errorf("principal %+v returned with an error", p)
		}
		checkNoLeak(t, err, c.token)
		t.Logf("refused: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	sum := sha256.Sum256([]byte(c.token))
	if want := "sha256:" + hex.EncodeToString(sum[:8]); p.Credential != want {
		t.Errorf("Credential = %q, want %q", p.Credential, want)
	}
	p.Credential = ""
	checkPrincipal(t, p, c.want)
}

func checkPrincipal(t *testing.T, got, want *Principal) {
	t.Helper()
	if got == nil {
		t.Fatal("nil principal")
	}
	if !got.Expiry.Equal(want.Expiry) {
		t.Errorf("Expiry = %v, want %v", got.Expiry, want.Expiry)
	}
	g, w := *got, *want
	g.Expiry, w.Expiry = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("principal =\n  %+v\nwant\n  %+v", g, w)
	}
}

// checkNoLeak fails if err wraps none of the package's sentinels, or if its
// message contains the token, any 12-byte piece of it, or a secret.
func checkNoLeak(t *testing.T, err error, token string, secrets ...string) {
	t.Helper()
	if !isSentinel(err) {
		t.Errorf("error %q wraps none of the identity sentinels", err)
	}
	msg := err.Error()
	const piece = 12
	for i := 0; i+piece <= len(token); i++ {
		if strings.Contains(msg, token[i:i+piece]) {
			t.Fatalf("error %q contains part of the token (%q)", msg, token[i:i+piece])
		}
	}
	for _, s := range append(secrets, canaryValues...) {
		if strings.Contains(msg, s) {
			t.Fatalf("error %q contains a claim value (%q)", msg, s)
		}
	}
}

// canaryValues are claim values the test tokens carry, which no error may
// repeat.
var canaryValues = []string{"user-canary-7f3a", "alice@example.com", "mallory", "someone-else", "sa-uid-1", "3b0f3a4e-jti"}

func isSentinel(err error) bool {
	for _, s := range []error{ErrNoToken, ErrInvalidToken, ErrUnknownIssuer, ErrTokenInQuery, ErrIssuerUnavailable} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// gateway is the configuration most tests use: a Dex-like IdP, with
// prefixes and a required claim, and a cluster's ServiceAccount issuer.
type gateway struct {
	clock *fakeClock
	idp   *testIssuer
	sa    *testIssuer
	a     *Authenticator
}

func newGateway(t testing.TB, tweak func(*Config)) *gateway {
	t.Helper()
	g := &gateway{clock: newFakeClock(), idp: newTestIssuer(t, "idp"), sa: newTestIssuer(t, "sa")}
	idp := g.idp.config(KindOIDC)
	idp.UsernameClaim = "email"
	idp.UsernamePrefix = "dex:"
	idp.GroupsClaim = "groups"
	idp.GroupsPrefix = "dex:"
	idp.RequiredClaims = map[string]string{"tenant": "acme"}
	cfg := Config{Issuers: []IssuerConfig{idp, g.sa.config(KindKubernetes)}, Now: g.clock.Now}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.a = a
	return g
}

func TestAuthenticate(t *testing.T) {
	g := newGateway(t, nil)
	if err := g.a.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	for _, c := range authCases(t, g) {
		t.Run(c.name, func(t *testing.T) { checkAuth(t, g.a, c) })
	}
	// None of the bad signatures made the gateway refetch keys: the clock
	// did not move, so no refetch was due.
	for _, ti := range []*testIssuer{g.idp, g.sa} {
		if d, k := ti.discoveryHits.Load(), ti.keysHits.Load(); d != 1 || k != 1 {
			t.Errorf("issuer %s: %d discovery and %d key set fetches, want 1 and 1", ti.url, d, k)
		}
	}
}

// authCases is the table of TestAuthenticate, also the seed corpus of
// FuzzAuthenticate: tokens from g's issuers at g's clock.
func authCases(t testing.TB, g *gateway) []authCase {
	idp, sa := g.idp, g.sa
	now := g.clock.Now()
	exp := now.Add(10 * time.Minute)
	idpTok := func(o map[string]any) string { return idp.sign(t, jose.RS256, idp.claims(now, o)) }
	saTok := func(o map[string]any) string { return sa.sign(t, jose.RS256, sa.saClaims(now, o)) }
	user := func(groups []string, exp time.Time) *Principal {
		return &Principal{User: "dex:alice@example.com", Groups: groups, Issuer: idp.url, Expiry: exp}
	}
	alice := user([]string{"dex:agents", "dex:admins"}, exp)
	rogue := newRSAKey(t)
	valid := idpTok(nil)
	saAccount := &Principal{
		User:   "system:serviceaccount:dev:default",
		UID:    "sa-uid-1",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:dev"},
		Extra: map[string][]string{
			"authentication.kubernetes.io/pod-name":      {"web-0"},
			"authentication.kubernetes.io/pod-uid":       {"pod-uid-1"},
			"authentication.kubernetes.io/node-name":     {"node-a"},
			"authentication.kubernetes.io/node-uid":      {"node-uid-1"},
			"authentication.kubernetes.io/credential-id": {"JTI=3b0f3a4e-jti"},
		},
		Issuer: sa.url,
		Expiry: exp,
	}
	saAsIdP := sa.saClaims(now, map[string]any{"iss": idp.url, "aud": "kubegate", "email": "alice@example.com", "tenant": "acme"})

	return []authCase{
		// Valid tokens and how their claims map.
		{name: "RS256", token: valid, want: alice},
		{name: "ES256", token: idp.sign(t, jose.ES256, idp.claims(now, nil)), want: alice},
		{name: "PS256", token: idp.sign(t, jose.PS256, idp.claims(now, nil)), want: alice},
		{name: "lower-case scheme", token: valid, header: []string{"bearer " + valid}, want: alice},
		{name: "groups as a string", token: idpTok(map[string]any{"groups": "agents"}), want: user([]string{"dex:agents"}, exp)},
		{name: "no groups claim", token: idpTok(map[string]any{"groups": omit}), want: user(nil, exp)},
		{name: "empty groups dropped", token: idpTok(map[string]any{"groups": []string{"", "agents"}}), want: user([]string{"dex:agents"}, exp)},
		{name: "aud list with ours", token: idpTok(map[string]any{"aud": []string{"other", "kubegate"}}), want: alice},
		{name: "expired within skew", token: idpTok(map[string]any{"exp": now.Add(-20 * time.Second).Unix()}), want: user(alice.Groups, now.Add(-20*time.Second))},
		{name: "expired at the skew bound", token: idpTok(map[string]any{"exp": now.Add(-30 * time.Second).Unix()}), want: user(alice.Groups, now.Add(-30*time.Second))},
		{name: "nbf within skew", token: idpTok(map[string]any{"nbf": now.Add(20 * time.Second).Unix()}), want: alice},
		{name: "iat within skew", token: idpTok(map[string]any{"iat": now.Add(20 * time.Second).Unix()}), want: alice},
		{name: "fractional exp", token: idpTok(map[string]any{"exp": float64(exp.Unix()) + 0.5}), want: user(alice.Groups, exp.Add(500*time.Millisecond))},
		{name: "continue token in query", token: valid, query: "limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ", want: alice},
		{name: "dotted selector in query", token: valid, query: "labelSelector=app.kubernetes.io%2Fname%3Dweb.a.b", want: alice},

		// Audience, time and issuer.
		{name: "wrong audience", token: idpTok(map[string]any{"aud": "someone-else"}), wantErr: ErrInvalidToken},
		{name: "no audience", token: idpTok(map[string]any{"aud": omit}), wantErr: ErrInvalidToken},
		{name: "expired", token: idpTok(map[string]any{"exp": now.Add(-time.Hour).Unix()}), wantErr: ErrInvalidToken},
		{name: "expired beyond skew", token: idpTok(map[string]any{"exp": now.Add(-31 * time.Second).Unix()}), wantErr: ErrInvalidToken},
		{name: "not yet valid", token: idpTok(map[string]any{"nbf": now.Add(time.Hour).Unix()}), wantErr: ErrInvalidToken},
		{name: "nbf beyond skew", token: idpTok(map[string]any{"nbf": now.Add(31 * time.Second).Unix()}), wantErr: ErrInvalidToken},
		{name: "iat beyond skew", token: idpTok(map[string]any{"iat": now.Add(31 * time.Second).Unix()}), wantErr: ErrInvalidToken},
		{name: "no exp", token: idpTok(map[string]any{"exp": omit}), wantErr: ErrInvalidToken},
		{name: "exp not a number", token: idpTok(map[string]any{"exp": "tomorrow"}), wantErr: ErrInvalidToken},
		{name: "nbf not a number", token: idpTok(map[string]any{"nbf": "now"}), wantErr: ErrInvalidToken},
		{name: "unknown issuer", token: idpTok(map[string]any{"iss": "https://127.0.0.1:1/nobody"}), wantErr: ErrUnknownIssuer},
		{name: "no iss", token: idpTok(map[string]any{"iss": omit}), wantErr: ErrInvalidToken},
		{name: "iss not a string", token: idpTok(map[string]any{"iss": 7}), wantErr: ErrInvalidToken},

		// Signatures and algorithms.
		{name: "alg none, empty signature", token: rawJWT(t, map[string]any{"alg": "none"}, idp.claims(now, nil), func(string) string { return "" }), wantErr: ErrInvalidToken},
		{name: "alg none, with a signature", token: rawJWT(t, map[string]any{"alg": "none"}, idp.claims(now, nil), func(string) string { return "c2ln" }), wantErr: ErrInvalidToken},
		{name: "HS256 keyed with the RSA public key", token: idp.hs256WithPublicKey(t, idp.claims(now, nil)), wantErr: ErrInvalidToken},
		{name: "unknown kid", token: signWith(t, rogue, "rogue", jose.RS256, idp.claims(now, nil)), wantErr: ErrInvalidToken},
		{name: "known kid, other key", token: signWith(t, rogue, idp.rsaKID, jose.RS256, idp.claims(now, nil)), wantErr: ErrInvalidToken},
		{name: "no kid, other key", token: signWith(t, rogue, "", jose.RS256, idp.claims(now, nil)), wantErr: ErrInvalidToken},
		{name: "ES256 header on the RSA key", token: rawJWT(t, map[string]any{"alg": "ES256", "kid": idp.rsaKID}, idp.claims(now, nil), func(in string) string { return strings.Split(valid, ".")[2] }), wantErr: ErrInvalidToken},
		{name: "tampered payload", token: replacePayload(t, valid, idp.claims(now, map[string]any{"email": "mallory@example.com"})), wantErr: ErrInvalidToken},
		{name: "tampered signature", token: flipSignature(valid), wantErr: ErrInvalidToken},
		{name: "five parts", token: valid + ".eyJh.YQ", wantErr: ErrInvalidToken},
		{name: "two parts", token: valid[:strings.LastIndexByte(valid, '.')], wantErr: ErrInvalidToken},
		{name: "header not JSON", token: "bm90IGpzb24." + strings.SplitN(valid, ".", 2)[1], wantErr: ErrInvalidToken},
		{name: "payload not base64", token: strings.Replace(valid, ".", ".*", 1), wantErr: ErrInvalidToken},

		// Claims.
		{name: "missing required claim", token: idpTok(map[string]any{"tenant": omit}), wantErr: ErrInvalidToken},
		{name: "wrong required claim", token: idpTok(map[string]any{"tenant": "other"}), wantErr: ErrInvalidToken},
		{name: "required claim not a string", token: idpTok(map[string]any{"tenant": []string{"acme"}}), wantErr: ErrInvalidToken},
		{name: "email not verified", token: idpTok(map[string]any{"email_verified": false}), wantErr: ErrInvalidToken},
		{name: "email_verified not a bool", token: idpTok(map[string]any{"email_verified": "true"}), wantErr: ErrInvalidToken},
		{name: "no username claim", token: idpTok(map[string]any{"email": omit}), wantErr: ErrInvalidToken},
		{name: "username claim not a string", token: idpTok(map[string]any{"email": 42}), wantErr: ErrInvalidToken},
		{name: "groups of the wrong type", token: idpTok(map[string]any{"groups": 42}), wantErr: ErrInvalidToken},
		{name: "control character in a group", token: idpTok(map[string]any{"groups": []string{"a\r\nImpersonate-User: admin"}}), wantErr: ErrInvalidToken},

		// The request around the token.
		{name: "no Authorization header", header: []string{}, wantErr: ErrNoToken},
		{name: "Basic credentials", header: []string{"Basic YWxpY2U6cGFzcw=="}, wantErr: ErrNoToken},
		{name: "empty bearer", header: []string{"Bearer "}, wantErr: ErrInvalidToken},
		{name: "two Authorization headers", header: []string{"Bearer " + valid, "Bearer " + valid}, token: valid, wantErr: ErrInvalidToken},
		{name: "space inside the token", header: []string{"Bearer " + valid[:20] + " " + valid[20:]}, token: valid, wantErr: ErrInvalidToken},
		{name: "oversized token", token: idpTok(map[string]any{"pad": strings.Repeat("x", MaxTokenSize)}), wantErr: ErrInvalidToken},
		{name: "access_token in query", token: valid, query: "access_token=" + valid, wantErr: ErrTokenInQuery},
		{name: "access_token in query, no header", header: []string{}, token: valid, query: "watch=1&access_token=" + valid, wantErr: ErrTokenInQuery},
		{name: "token parameter", token: valid, query: "token=x", wantErr: ErrTokenInQuery},
		{name: "JWT in another parameter", header: []string{}, token: valid, query: "q=" + valid, wantErr: ErrTokenInQuery},
		{name: "JWT as a parameter name", header: []string{}, token: valid, query: "a=b&" + valid, wantErr: ErrTokenInQuery},
		{name: "JWT after a semicolon", header: []string{}, token: valid, query: "a=b;c=" + valid, wantErr: ErrTokenInQuery},
		{name: "escaped JWT inside a value", header: []string{}, token: valid, query: "next=" + url.QueryEscape("https://x/?t="+valid), wantErr: ErrTokenInQuery},
		{name: "header token repeated in query", token: "opaque-token-0123456789", query: "x=opaque-token-0123456789", wantErr: ErrTokenInQuery},

		// ServiceAccount tokens.
		{name: "ServiceAccount token", token: saTok(nil), want: saAccount},
		{name: "ServiceAccount token bound to nothing", token: saTok(map[string]any{"jti": omit, "kubernetes.io": map[string]any{
			"namespace": "dev", "serviceaccount": map[string]any{"name": "default", "uid": "sa-uid-1"}}}),
			want: &Principal{User: saAccount.User, UID: "sa-uid-1", Groups: saAccount.Groups, Issuer: sa.url, Expiry: exp}},
		{name: "ServiceAccount sub disagrees with kubernetes.io", token: saTok(map[string]any{"sub": "system:serviceaccount:kube-system:admin"}), wantErr: ErrInvalidToken},
		{name: "ServiceAccount token without kubernetes.io", token: saTok(map[string]any{"kubernetes.io": omit}), wantErr: ErrInvalidToken},
		{name: "ServiceAccount token for the apiserver audience", token: saTok(map[string]any{"aud": []string{"https://kubernetes.default.svc"}}), wantErr: ErrInvalidToken},
		{name: "ServiceAccount token expired", token: saTok(map[string]any{"exp": now.Add(-time.Minute).Unix()}), wantErr: ErrInvalidToken},
		{name: "IdP-signed token claiming the ServiceAccount issuer", token: idp.sign(t, jose.RS256, sa.saClaims(now, nil)), wantErr: ErrInvalidToken},
		{name: "IdP-signed token with the ServiceAccount key id", token: signWith(t, idp.rsa, sa.rsaKID, jose.RS256, sa.saClaims(now, nil)), wantErr: ErrInvalidToken},
		{name: "ServiceAccount-signed token claiming the IdP", token: sa.sign(t, jose.RS256, saAsIdP), wantErr: ErrInvalidToken},
	}
}

// A token from the IdP presented to a gateway that trusts only the cluster's
// ServiceAccount issuer names an issuer it does not know.
func TestIdPTokenReplayedToServiceAccountIssuer(t *testing.T) {
	g := newGateway(t, func(c *Config) { c.Issuers = c.Issuers[1:] })
	tok := g.idp.sign(t, jose.RS256, g.idp.claims(g.clock.Now(), nil))
	checkAuth(t, g.a, authCase{token: tok, wantErr: ErrUnknownIssuer})
	if n := g.idp.discoveryHits.Load() + g.sa.discoveryHits.Load(); n != 0 {
		t.Errorf("%d discovery fetches for a token from an unknown issuer, want 0", n)
	}
}

// An IdP without prefixes may not hand out Kubernetes' reserved names.
func TestReservedNames(t *testing.T) {
	clock := newFakeClock()
	idp := newTestIssuer(t, "idp")
	cfg := idp.config(KindOIDC)
	cfg.GroupsClaim = "groups"
	a, err := New(Config{Issuers: []IssuerConfig{cfg}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	tok := func(o map[string]any) string { return idp.sign(t, jose.ES256, idp.claims(now, o)) }
	tests := []authCase{
		{name: "plain user", token: tok(map[string]any{"sub": "alice"}),
			want: &Principal{User: "alice", Groups: []string{"agents", "admins"}, Issuer: idp.url, Expiry: now.Add(10 * time.Minute)}},
		{name: "system user", token: tok(map[string]any{"sub": "system:admin"}), wantErr: ErrInvalidToken},
		{name: "service account name", token: tok(map[string]any{"sub": "system:serviceaccount:kube-system:default"}), wantErr: ErrInvalidToken},
		{name: "system:masters group", token: tok(map[string]any{"sub": "alice", "groups": []string{"system:masters"}}), wantErr: ErrInvalidToken},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) { checkAuth(t, a, c) })
	}
}
