package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/kubegate/kubegate/internal/testenv"
)

func TestTokensVerifyWithGoOIDC(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ctx = oidc.ClientContext(ctx, env.Dex.HTTPClient()) // trusts the env's CA, which signs the apiserver too

	dexProvider, err := oidc.NewProvider(ctx, env.Dex.Issuer)
	if err != nil {
		t.Fatalf("dex discovery: %v", err)
	}
	saProvider, err := oidc.NewProvider(ctx, env.ServiceAccountIssuer)
	if err != nil {
		t.Fatalf("service-account issuer discovery: %v", err)
	}

	t.Run("dex ID token", func(t *testing.T) {
		raw, err := env.Dex.Token(ctx, "agent")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := dexProvider.Verifier(&oidc.Config{ClientID: env.Dex.ClientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		var claims struct {
			Email  string   `json:"email"`
			Groups []string `json:"groups"`
		}
		if err := tok.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.Email != "agent@kubegate.test" || len(claims.Groups) != 1 || claims.Groups[0] != "agents" {
			t.Errorf("claims = %+v, want agent@kubegate.test in group agents", claims)
		}
		if _, err := dexProvider.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(ctx, raw); err == nil || !strings.Contains(err.Error(), "audience") {
			t.Errorf("verify with the wrong audience: err = %v, want an audience error", err)
		}
		if _, err := saProvider.Verifier(&oidc.Config{ClientID: env.Dex.ClientID}).Verify(ctx, raw); err == nil {
			t.Error("a Dex token verified against the service-account issuer")
		}
	})

	t.Run("service account token", func(t *testing.T) {
		raw, err := env.ServiceAccountToken(ctx, "dev", "default", "kubegate", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := saProvider.Verifier(&oidc.Config{ClientID: "kubegate"}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if tok.Subject != "system:serviceaccount:dev:default" {
			t.Errorf("subject %q, want system:serviceaccount:dev:default", tok.Subject)
		}
		wrong, err := env.ServiceAccountToken(ctx, "dev", "default", "not-kubegate", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := saProvider.Verifier(&oidc.Config{ClientID: "kubegate"}).Verify(ctx, wrong); err == nil || !strings.Contains(err.Error(), "audience") {
			t.Errorf("token for audience not-kubegate: err = %v, want an audience error", err)
		}
	})
}
