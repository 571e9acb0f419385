package e2e

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
)

// attackTLSAndAdmin: old protocol versions and weak cipher suites fail the
// handshake with kubegate, and kubegate's own admin endpoints (profiles,
// metrics, sessions, cluster) are not on its public listener: there such
// paths are Kubernetes non-resource paths, refused by kubegate without a
// token and by the apiserver's RBAC with one, and never answered with
// kubegate's own data.
func attackTLSAndAdmin(t *testing.T, k *attackKit) int {
	n := 0
	handshakes := []struct {
		name    string
		cfg     *tls.Config
		wantErr bool
	}{
		{"TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, true},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}, true},
		{"TLS 1.2 with CBC suites only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, true},
		{"TLS 1.2 with RSA key exchange only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}}, true},
		{"TLS 1.2 with RC4 and 3DES only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}}, true},
		{"control: TLS 1.2 with ECDHE and AES-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, false},
		{"control: TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, false},
	}
	for _, tc := range handshakes {
		n++
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.Clone()
			cfg.RootCAs = k.tlsCfg.RootCAs
			c, err := tls.Dial("tcp", k.host, cfg)
			if tc.wantErr {
				if err == nil {
					st := c.ConnectionState()
					c.Close()
					t.Fatalf("handshake succeeded: %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/metrics", "/sessions", "/cluster"} {
		n++
		t.Run("admin path "+path, func(t *testing.T) {
			if r := k.send(t, "GET", path, "", nil, nil); r.code != http.StatusUnauthorized || !fromKubegate(r) {
				t.Errorf("without a token: %d %.200s, want kubegate's 401", r.code, r.body)
			}
			r := k.send(t, "GET", path, k.agent, nil, nil)
			switch {
			case r.code == http.StatusBadRequest && fromKubegate(r): // kubegate refuses the trailing slash
			case r.code == http.StatusForbidden, r.code == http.StatusNotFound:
			default:
				t.Errorf("with the agent's token: %d %.200s, want a refusal (kubegate's 400, the apiserver's 403 or 404)", r.code, r.body)
			}
			if containsAny(r.body, "kubegate_", "goroutine profile", "raft", `"sessions"`) {
				t.Errorf("kubegate's own admin data on the public listener: %.300s", r.body)
			}
		})
	}
	return n
}

// kubegateSays pins, for smuggling cases kubegate itself refuses, words of
// its Status.
var kubegateSays = map[string]string{
	"h2c upgrade on an allowed path":  "upgrading to h2c is not supported",
	"unknown Upgrade on exec in prod": `upgrading to \"foo\" is not supported`,
}

func checkKubegateSays(t *testing.T, name string, rs []reply) {
	t.Helper()
	want, ok := kubegateSays[name]
	if !ok {
		return
	}
	if len(rs) == 0 || !fromKubegate(rs[0]) || !strings.Contains(rs[0].body, want) {
		t.Errorf("want kubegate's refusal saying %q, got %.300s", want, firstBody(rs))
	}
}
