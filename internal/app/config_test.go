package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubegate/kubegate/policy"
	"sigs.k8s.io/yaml"
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
	if is, err := cfg.consoleIssuer(); err != nil || is.Name != "corp-idp" || !cfg.Console.Enabled {
		t.Errorf("console issuer: %+v, %v", is, err)
	}
	if l := cfg.Limits; l.RequestsPerSecond != 100 || l.Burst != 300 || l.MaxStreams != 128 || l.BodyReadTimeout != policy.Duration(30*time.Second) {
		t.Errorf("limits: %+v", l)
	}
}

func TestBadConfigsAreClearErrors(t *testing.T) {
	base := "tls: {certFile: a, keyFile: b}\nidentity: {issuers: [{url: https://x, audience: k}]}\naudit: {file: {path: /tmp/x}}\n"
	cases := []struct{ name, yaml, want string }{
		{"unknown field", base + "listne: 1.2.3.4:1\n", "listne"},
		{"no tls", "identity: {issuers: [{url: https://x, audience: k}]}\naudit: {file: {path: /tmp/x}}\n", "tls.certFile"},
		{"no issuer", "tls: {certFile: a, keyFile: b}\naudit: {file: {path: /tmp/x}}\n", "issuer"},
		{"bad skew", strings.Replace(base, "audience: k", "audience: k, clockSkew: soon", 1), "clockSkew"},
		{"negative burst", base + "limits: {burst: -1}\n", "limits.burst"},
		{"negative body size", base + "limits: {maxBodyBytes: -1}\n", "limits.maxBodyBytes"},
		{"negative handshake timeout", base + "limits: {handshakeTimeout: -1s}\n", "limits.handshakeTimeout"},
		{"no audit path", "tls: {certFile: a, keyFile: b}\nidentity: {issuers: [{url: https://x, audience: k}]}\n", "audit.file.path"},
		{"console issuer unknown", base + "console: {enabled: true, issuer: nope}\n", `console.issuer "nope"`},
		{"console without an OIDC issuer", strings.Replace(base, "audience: k", "audience: k, kind: kubernetes", 1) + "console: {enabled: true}\n", "no OIDC issuer"},
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

// TestDeployConfigLoads: the configuration in deploy/kubernetes's ConfigMap
// loads, with the per-node settings the StatefulSet passes as flags.
func TestDeployConfigLoads(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubegate.yaml")
	if err := os.WriteFile(path, []byte(cm.Data["kubegate.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "need cluster.bind") {
		t.Fatalf("without the per-node flags: %v, want an error naming cluster.bind", err)
	}
	if _, err := LoadConfigWith(path, func(c *Config) { c.Cluster.Bind = "0.0.0.0:7001" }); err == nil || !strings.Contains(err.Error(), "cluster.tls") {
		t.Fatalf("without a peer certificate: %v, want an error naming cluster.tls", err)
	}
	cfg, err := LoadConfigWith(path, func(c *Config) {
		c.Cluster.NodeID, c.Cluster.Bind = "kubegate-1", "0.0.0.0:7001"
		c.Cluster.TLS.CertFile, c.Cluster.TLS.KeyFile = "/etc/kubegate/peer/kubegate-1.crt", "/etc/kubegate/peer/kubegate-1.key"
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.BootstrapNodeID != "kubegate-0" || len(cfg.Cluster.Join) != 3 || cfg.Cluster.TLS.CAFile == "" {
		t.Errorf("cluster config %+v", cfg.Cluster)
	}
	if _, err := policy.New(cfg.Policy); err != nil {
		t.Errorf("deploy policy does not compile: %v", err)
	}
}
