package tlsfront

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startLimited starts a server with cfg's limits and returns its address
// and metrics registry.
func startLimited(t *testing.T, cfg Config) (string, *prometheus.Registry) {
	t.Helper()
	cfg.CertFile, cfg.KeyFile = writeSelfSigned(t, t.TempDir(), "limits")
	cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveLoopback(t, s), reg
}

// TestModernCipherSuitesOnly: a TLS 1.2 client offering only CBC, RSA key
// exchange or RC4 suites fails the handshake; one offering an ECDHE AEAD
// suite succeeds.
func TestModernCipherSuitesOnly(t *testing.T) {
	addr, _ := startLimited(t, Config{})
	cases := []struct {
		name    string
		suites  []uint16
		wantErr bool
	}{
		{"ECDHE-ECDSA-AES128-GCM", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, false},
		{"ECDHE-ECDSA-CHACHA20", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, false},
		{"CBC with SHA-1", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, true},
		{"CBC with SHA-256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, true},
		{"RSA key exchange", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, true},
		{"RC4 and 3DES", []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := handshake(t, addr, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: tc.suites})
			if tc.wantErr {
				if err == nil {
					suite := tls.CipherSuiteName(c.ConnectionState().CipherSuite)
					c.Close()
					t.Fatalf("handshake succeeded with %s", suite)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			c, err := handshake(t, addr, &tls.Config{MinVersion: v, MaxVersion: v})
			if err == nil {
				c.Close()
				t.Fatalf("%s handshake succeeded", tls.VersionName(v))
			}
		})
	}
}

// TestStalledHandshakeIsCutOff: a client that connects and never says
// hello is disconnected after the handshake timeout, counted, and does not
// hold up another client.
func TestStalledHandshakeIsCutOff(t *testing.T) {
	addr, reg := startLimited(t, Config{HandshakeTimeout: 300 * time.Millisecond})
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// Another client is served while the first stalls.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The stalled connection is closed by the server (the read deadline
	// here is a bound for a hung test, not a measurement).
	_ = stalled.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := stalled.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a connection with no handshake open")
	}
	if n != 0 {
		t.Errorf("read %d bytes from a connection that never said hello", n)
	}
	waitFor(t, func() bool {
		return counterValue(t, reg, "kubegate_tls_handshake_failures_total", "timeout") == 1
	})
}

// TestMaxConnectionsWaitsInTheBacklog: past MaxConnections, a new client's
// handshake waits until a connection closes.
func TestMaxConnectionsWaitsInTheBacklog(t *testing.T) {
	addr, _ := startLimited(t, Config{MaxConnections: 1, HandshakeTimeout: time.Minute})
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := handshake(t, addr, &tls.Config{})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a second connection completed its handshake while the only slot was taken (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	if err := <-done; err != nil {
		t.Fatalf("handshake after the slot was freed: %v", err)
	}
}

// counterValue reads the counter name{reason=reason} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{reason=%q} not found", name, reason)
	return 0
}

// waitFor polls cond until it holds, failing after a generous bound.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
