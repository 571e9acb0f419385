package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// The key set keeps public signing keys only.
func TestFetchKeysFilters(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t), newECKey(t)
	set := `{"keys":[
		{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
		{"kty":"OKP","crv":"X448","kid":"x448","x":"AAAA"},
		{"kty":"EC","crv":"secp256k1","alg":"ES256K","kid":"k1","x":"AAAA","y":"AAAA"},
		` + jwkJSON(t, jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "enc", Use: "enc"}) + `,
		` + jwkJSON(t, jose.JSONWebKey{Key: rsaKey, KeyID: "private-by-mistake"}) + `,
		` + jwkJSON(t, jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "ec", Use: "sig"}) + `
	]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(set))
	}))
	defer srv.Close()
	keys, err := fetchKeys(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KeyID)
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
		default:
			t.Errorf("key %s is a %T", k.KeyID, k.Key)
		}
	}
	if len(kids) != 2 || kids[0] != "private-by-mistake" || kids[1] != "ec" {
		t.Errorf("kept keys %v, want [private-by-mistake ec]", kids)
	}
}

func TestFetchKeysFailures(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"server error", http.StatusInternalServerError, "{}"},
		{"not JSON", http.StatusOK, "<html>"},
		{"no usable keys", http.StatusOK, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`},
		{"too large", http.StatusOK, `{"keys":[],"pad":"` + string(make([]byte, maxKeySetSize)) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			if _, err := fetchKeys(context.Background(), srv.Client(), srv.URL); err == nil {
				t.Fatal("fetchKeys succeeded")
			}
		})
	}
}

func jwkJSON(t *testing.T, k jose.JSONWebKey) string {
	t.Helper()
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Only the algorithms the issuer's discovery document lists (and kubegate
// allows) are accepted from it; a key's own alg binds it too.
func TestDiscoveredAlgorithms(t *testing.T) {
	g := newGateway(t, nil)
	g.idp.advertise("ES256", "HS256")
	ctx := context.Background()
	now := g.clock.Now()
	es := g.idp.sign(t, jose.ES256, g.idp.claims(now, nil))
	rs := g.idp.sign(t, jose.RS256, g.idp.claims(now, nil))
	if _, err := g.a.Authenticate(ctx, bearer(es)); err != nil {
		t.Fatalf("ES256, advertised: %v", err)
	}
	if _, err := g.a.Authenticate(ctx, bearer(rs)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("RS256, not advertised: %v, want ErrInvalidToken", err)
	}
	if got := g.a.issuers[g.idp.url].algs; len(got) != 1 || got[0] != "ES256" {
		t.Errorf("accepted algorithms %v, want [ES256]", got)
	}

	// The ServiceAccount issuer advertises everything; its RSA key is
	// declared RS256, so a PS256 signature by the same key is refused.
	g.sa.publish(jose.JSONWebKey{Key: &g.sa.rsa.PublicKey, KeyID: "sa-rs256-only", Algorithm: "RS256"})
	ps := signWith(t, g.sa.rsa, "sa-rs256-only", jose.PS256, g.sa.saClaims(now, nil))
	if _, err := g.a.Authenticate(ctx, bearer(ps)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("PS256 under a key declared RS256: %v, want ErrInvalidToken", err)
	}
	rsOnly := signWith(t, g.sa.rsa, "sa-rs256-only", jose.RS256, g.sa.saClaims(now, map[string]any{"jti": "2"}))
	if _, err := g.a.Authenticate(ctx, bearer(rsOnly)); err != nil {
		t.Fatalf("RS256 under a key declared RS256: %v", err)
	}
}

// The issuer's verifier refuses HMAC and unsigned tokens by itself, without
// Authenticate's early algorithm check, even though the test issuer
// advertises HS256 and none.
func TestVerifierRefusesSymmetricAndNone(t *testing.T) {
	g := newGateway(t, nil)
	ctx := context.Background()
	now := g.clock.Now()
	is := g.a.issuers[g.idp.url]
	for name, tok := range map[string]string{
		"HS256": g.idp.hs256WithPublicKey(t, g.idp.claims(now, nil)),
		"none":  rawJWT(t, map[string]any{"alg": "none"}, g.idp.claims(now, nil), func(string) string { return "c2ln" }),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := is.verify(ctx, tok, now)
			if !errors.Is(err, ErrInvalidToken) || p != nil {
				t.Fatalf("verify = %v, %v; want ErrInvalidToken", p, err)
			}
			checkNoLeak(t, err, tok)
		})
	}
}
