package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubegate/kubegate/policy"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../../examples/kubegate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Identity.Issuers) != 2 || cfg.Identity.Issuers[1].Kind != "kubernetes" {
		t.Errorf("issuers: %+v", cfg.Identity.Issuers)
	}
	if _, err := policy.New(cfg.Policy); err != nil {
		t.Errorf("example policy does not compile: %v", err)
	}
}

func TestBadConfigsAreClearErrors(t *testing.T) {
	base := "tls: {certFile: a, keyFile: b}\nidentity: {issuers: [{url: https://x, audience: k}]}\naudit: {file: {path: /tmp/x}}\n"
	cases := []struct{ name, yaml, want string }{
		{"unknown field", base + "listne: 1.2.3.4:1\n", "listne"},
		{"no tls", "identity: {issuers: [{url: https://x, audience: k}]}\naudit: {file: {path: /tmp/x}}\n", "tls.certFile"},
		{"no issuer", "tls: {certFile: a, keyFile: b}\naudit: {file: {path: /tmp/x}}\n", "issuer"},
		{"bad skew", strings.Replace(base, "audience: k", "audience: k, clockSkew: soon", 1), "clockSkew"},
		{"no audit path", "tls: {certFile: a, keyFile: b}\nidentity: {issuers: [{url: https://x, audience: k}]}\n", "audit.file.path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}
