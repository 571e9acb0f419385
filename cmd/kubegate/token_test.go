package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/agentcred/oidctest"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
)

// testJWT returns a JWT-shaped token expiring at exp: enough for `kubegate
// token`, which does not verify signatures (the gateway does).
func testJWT(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload := fmt.Sprintf(`{"sub":"system:serviceaccount:ci:runner","exp":%d}`, exp.Unix())
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + ".sig"
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// decodeCredential decodes what `kubegate token` printed.
func decodeCredential(t *testing.T, out []byte) clientauthv1.ExecCredential {
	t.Helper()
	var c clientauthv1.ExecCredential
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if c.Kind != "ExecCredential" || c.APIVersion != "client.authentication.k8s.io/v1" || c.Status == nil {
		t.Fatalf("output %s is not a v1 ExecCredential with a status", out)
	}
	return c
}

func TestTokenCommandTokenFile(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok := testJWT(exp)
	path := writeFile(t, filepath.Join(t.TempDir(), "token"), tok+"\n")
	var stdout, stderr bytes.Buffer
	execInfo := `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`
	if err := tokenCommand(context.Background(), []string{"--token-file", path}, &stdout, &stderr, execInfo); err != nil {
		t.Fatal(err)
	}
	c := decodeCredential(t, stdout.Bytes())
	if c.Status.Token != tok || c.Status.ExpirationTimestamp == nil || !c.Status.ExpirationTimestamp.Time.Equal(exp) {
		t.Errorf("status = %+v, want the file's token expiring %v", c.Status, exp)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestTokenCommandOIDCUsesTheCache(t *testing.T) {
	const user, password, secret = "agent@kubegate.test", "agent-password-123", "client-secret-456"
	p := oidctest.New(t, oidctest.Options{ClientSecret: secret, Users: map[string]string{user: password}})
	dir := t.TempDir()
	args := []string{
		"--oidc-issuer", p.Issuer, "--client-id", "kubegate", "--username", user,
		"--client-secret-file", writeFile(t, filepath.Join(dir, "secret"), secret),
		"--password-file", writeFile(t, filepath.Join(dir, "password"), password),
		"--oidc-ca", p.WriteCA(t, dir), "--cache-dir", filepath.Join(dir, "cache"),
	}
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := tokenCommand(context.Background(), args, &stdout, &stderr, ""); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		c := decodeCredential(t, stdout.Bytes())
		if issued := p.Issued(); len(issued) != 1 || c.Status.Token != issued[0] {
			t.Errorf("call %d: token is not the one issued (issued %d)", i, len(issued))
		}
	}
	if p.Grants() != 1 {
		t.Errorf("%d password grants for two calls, want 1 (the second from the cache)", p.Grants())
	}
}

func TestTokenCommandErrors(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), testJWT(time.Now().Add(time.Hour)))
	tests := []struct {
		name     string
		args     []string
		execInfo string
		want     string
	}{
		{"no source", nil, "", "no credential source"},
		{"stray argument", []string{"--token-file", tokenFile, "extra"}, "", `unexpected arguments ["extra"]`},
		{"missing token file", []string{"--token-file", filepath.Join(dir, "nope")}, "", "reading token file " + filepath.Join(dir, "nope")},
		{"old exec API", []string{"--token-file", tokenFile}, `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1"}`, "unsupported KUBERNETES_EXEC_INFO"},
		{"unknown flag", []string{"--token", tokenFile}, "", "flag provided but not defined: -token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := tokenCommand(context.Background(), tc.args, &stdout, &stderr, tc.execInfo)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q on error", stdout.String())
			}
		})
	}
}
