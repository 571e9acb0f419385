package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwtParts splits a compact JWT into its decoded header and claims.
func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWT: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signRS256 signs claims with key under kid.
func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withClaims copies claims and applies changes (a nil value deletes).
func withClaims(claims map[string]any, changes map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// swapPayload keeps tok's header and signature around other claims.
func swapPayload(t *testing.T, tok string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	return parts[0] + "." + b64json(t, claims) + "." + parts[2]
}

// saSigningKey reads the apiserver's service-account signing key and its
// public key's PEM from the env's PKI.
func saSigningKey(t *testing.T, dir string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(dir, "pki", "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("sa.key holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "pki", "sa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey), pub
}

// attackTokens: forged, replayed and misplaced tokens never get past
// kubegate. Tokens for the service-account issuer are forged with the
// apiserver's real signing key (from the env's PKI), so only the claim
// under test is wrong; Dex's key lives in Dex's memory, so Dex tokens are
// tampered or signed with other keys.
func attackTokens(t *testing.T, k *attackKit) int {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	saKey, saPub := saSigningKey(t, k.env.Dir)
	saHeader, saClaims := jwtParts(t, k.bot)
	saKid, _ := saHeader["kid"].(string)
	dexHeader, dexClaims := jwtParts(t, k.agent)
	dexKid, _ := dexHeader["kid"].(string)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sa := func(changes map[string]any) string { return signRS256(t, saKey, saKid, withClaims(saClaims, changes)) }
	algNone := func(claims map[string]any) string {
		return b64json(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64json(t, claims) + "."
	}
	hs256 := func(secret []byte, kid string, claims map[string]any) string {
		in := b64json(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	pubBlock, _ := pem.Decode(saPub)
	flipSig := func(tok string) string {
		i := strings.LastIndexByte(tok, '.')
		sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
		sig[len(sig)/2] ^= 0x01
		return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
	}
	apiserverTok, err := k.env.ServiceAccountToken(ctx, "dev", "ci-bot", k.env.APIServerURL, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	otherAudTok, err := k.env.ServiceAccountToken(ctx, "dev", "ci-bot", "not-kubegate", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	const pods = "/api/v1/namespaces/dev/pods"
	cases := []struct {
		name string
		// path is pods unless set; hdr are extra headers; raw replaces the
		// whole Authorization handling when set.
		path   string
		token  string
		hdr    http.Header
		want   int
		reason string
	}{
		{name: "control: a token re-signed with the real service-account key", token: sa(nil), want: http.StatusOK},
		{name: "service-account issuer: expired an hour ago", token: sa(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix()}), want: 401},
		{name: "service-account issuer: not valid for an hour", token: sa(map[string]any{"nbf": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), want: 401},
		{name: "service-account issuer: issued in the future", token: sa(map[string]any{"iat": now.Add(time.Hour).Unix()}), want: 401},
		{name: "service-account issuer: no exp", token: sa(map[string]any{"exp": nil}), want: 401},
		{name: "service-account issuer: wrong audience", token: sa(map[string]any{"aud": []string{"someone-else"}}), want: 401},
		{name: "service-account issuer: wrong issuer", token: sa(map[string]any{"iss": "https://evil.example"}), want: 401},
		{name: "service-account issuer: sub names another account than kubernetes.io", token: sa(map[string]any{"sub": "system:serviceaccount:prod:default"}), want: 401},
		{name: "service-account issuer: unknown kid", token: signRS256(t, saKey, "no-such-kid", saClaims), want: 401},
		{name: "service-account issuer: foreign key under the real kid", token: signRS256(t, otherKey, saKid, saClaims), want: 401},
		{name: "service-account issuer: alg none", token: algNone(saClaims), want: 401},
		{name: "service-account issuer: HS256 keyed with the RSA public key PEM", token: hs256(saPub, saKid, saClaims), want: 401},
		{name: "service-account issuer: HS256 keyed with the RSA public key DER", token: hs256(pubBlock.Bytes, saKid, saClaims), want: 401},
		{name: "service-account issuer: tampered payload", token: swapPayload(t, k.bot, withClaims(saClaims, map[string]any{"sub": "system:serviceaccount:prod:default"})), want: 401},
		{name: "service-account issuer: tampered signature", token: flipSig(k.bot), want: 401},
		{name: "service-account issuer: real token for the apiserver's audience", token: apiserverTok, want: 401},
		{name: "service-account issuer: real token for another audience", token: otherAudTok, want: 401},
		{name: "dex: tampered payload (groups platform-admins)", token: swapPayload(t, k.agent, withClaims(dexClaims, map[string]any{"groups": []string{"platform-admins"}})), want: 401},
		{name: "dex: tampered signature", token: flipSig(k.agent), want: 401},
		{name: "dex: alg none", token: algNone(dexClaims), want: 401},
		{name: "dex: foreign key under dex's kid", token: signRS256(t, otherKey, dexKid, dexClaims), want: 401},
		{name: "dex: unknown kid", token: signRS256(t, otherKey, "no-such-kid", dexClaims), want: 401},
		{name: "dex: expired, signed with a foreign key", token: signRS256(t, otherKey, dexKid, withClaims(dexClaims, map[string]any{"exp": now.Add(-time.Hour).Unix()})), want: 401},
		{name: "IdP token replayed as a service-account token (iss swapped)", token: swapPayload(t, k.agent, withClaims(dexClaims, map[string]any{"iss": k.env.ServiceAccountIssuer})), want: 401},
		{name: "service-account token replayed as an IdP token (iss swapped)", token: swapPayload(t, k.bot, withClaims(saClaims, map[string]any{"iss": k.env.Dex.Issuer, "email": "admin@kubegate.test", "groups": []string{"platform-admins"}})), want: 401},
		{name: "service-account key signs for the IdP issuer", token: sa(map[string]any{"iss": k.env.Dex.Issuer, "aud": k.env.Dex.ClientID, "email": "admin@kubegate.test", "groups": []string{"platform-admins"}}), want: 401},
		{name: "two Authorization headers", token: k.agent, hdr: http.Header{"Authorization": {"Bearer " + k.bot}}, want: 401},
		{name: "two Authorization headers, one garbage", token: k.agent, hdr: http.Header{"Authorization": {"Bearer x.y.z"}}, want: 401},
		{name: "token in the query string (access_token)", path: pods + "?access_token=" + k.agent, want: 401},
		{name: "token in the query string beside a valid header", path: pods + "?token=" + k.bot, token: k.agent, want: 401},
		{name: "token hidden in another parameter", path: pods + "?labelSelector=" + k.agent, token: k.agent, want: 401},
		{name: "oversized token (24 KiB)", token: "eyJ" + repeat('A', 24<<10) + ".e30.sig", want: 401},
		{name: "basic auth carrying a token", hdr: http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("agent:"+k.agent))}}, want: 401},
		{name: "no token", want: 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = pods
			}
			hdr := http.Header{}
			for n, vs := range tc.hdr {
				hdr[n] = append([]string(nil), vs...)
			}
			req, err := http.NewRequest("GET", "https://"+k.host+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = hdr
			if tc.token != "" {
				req.Header["Authorization"] = append([]string{"Bearer " + tc.token}, req.Header["Authorization"]...)
			}
			resp, err := k.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body strings.Builder
			_, _ = io.Copy(&body, resp.Body)
			r := reply{code: resp.StatusCode, header: resp.Header, body: body.String()}
			if r.code != tc.want {
				t.Fatalf("status %d, want %d: %.300s", r.code, tc.want, r.body)
			}
			if tc.want == http.StatusUnauthorized {
				if !fromKubegate(r) || statusReason(r.body) != "Unauthorized" {
					t.Errorf("the 401 is not kubegate's Unauthorized Status: %.300s", r.body)
				}
				if strings.Contains(r.body, "toolbox") {
					t.Error("a refused request returned pods")
				}
			}
			if tc.token != "" && len(tc.token) > 20 && strings.Contains(r.body, tc.token) {
				t.Error("the reply echoes the token")
			}
		})
	}

	// Claims a service-account token carries beyond its identity do not
	// become groups or another user upstream.
	t.Run("service-account token with smuggled groups and email claims", func(t *testing.T) {
		tok := sa(map[string]any{"groups": []string{"system:masters", "platform-admins"}, "email": "admin@kubegate.test", "preferred_username": "system:admin"})
		r, user, groups := k.whoami(t, tok, nil)
		if r.code != http.StatusCreated {
			t.Fatalf("selfsubjectreview: %d %.300s", r.code, r.body)
		}
		if user != "system:serviceaccount:dev:ci-bot" || containsAny(strings.Join(groups, ","), "system:masters", "platform-admins") {
			t.Errorf("upstream identity %q %v, want system:serviceaccount:dev:ci-bot without the smuggled groups", user, groups)
		}
	})
	return len(cases) + 1
}
