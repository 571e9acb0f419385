package tlsfront

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 with the
// given common name and returns its files.
func writeSelfSigned(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// Write to temporary names and rename, as a certificate manager would.
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, {keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}} {
		if err := os.WriteFile(f.path+".tmp", f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func startServer(t *testing.T, certFile, keyFile string, clock *fakeClock) string {
	t.Helper()
	s, err := New(Config{CertFile: certFile, KeyFile: keyFile, Now: clock.now,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })})
	if err != nil {
		t.Fatal(err)
	}
	return serveLoopback(t, s)
}

// serveLoopback serves s on a free loopback port until the test ends and
// returns the address.
func serveLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func handshake(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	cfg.InsecureSkipVerify = true //nolint: the test inspects the certificate itself
	return tls.Dial("tcp", addr, cfg)
}

func TestALPNAndVersions(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t, t.TempDir(), "one")
	addr := startServer(t, certFile, keyFile, &fakeClock{})
	cases := []struct {
		name      string
		cfg       *tls.Config
		wantProto string
		wantErr   bool
	}{
		{"h2 preferred", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, "h2", false},
		{"http/1.1 for upgrades", &tls.Config{NextProtos: []string{"http/1.1"}}, "http/1.1", false},
		{"TLS 1.3 by default", &tls.Config{}, "", false},
		{"TLS 1.1 refused", &tls.Config{MaxVersion: tls.VersionTLS11}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := handshake(t, addr, tc.cfg)
			if tc.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if st.NegotiatedProtocol != tc.wantProto {
				t.Errorf("ALPN %q, want %q", st.NegotiatedProtocol, tc.wantProto)
			}
			if tc.cfg.MaxVersion == 0 && st.Version != tls.VersionTLS13 {
				t.Errorf("version %x, want TLS 1.3", st.Version)
			}
		})
	}
}

func TestCertificateReloadKeepsOpenConnections(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir, "first")
	clock := &fakeClock{}
	addr := startServer(t, certFile, keyFile, clock)

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var firstConnCN string
	get := func() string {
		t.Helper()
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.ReadAll(resp.Body)
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	firstConnCN = get()
	if firstConnCN != "first" {
		t.Fatalf("served %q, want first", firstConnCN)
	}

	writeSelfSigned(t, dir, "second")
	clock.add(2 * time.Second)
	// The open (kept-alive) connection still works and still shows the old certificate.
	if cn := get(); cn != "first" {
		t.Errorf("open connection shows %q after reload, want it kept as first", cn)
	}
	// A new handshake gets the new certificate.
	c, err := handshake(t, addr, &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
		t.Errorf("new connection got %q, want second", cn)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	h := http.NotFoundHandler()
	if _, err := New(Config{Handler: h}); err == nil {
		t.Error("New without certificate files succeeded")
	}
	if _, err := New(Config{Handler: h, CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}); err == nil {
		t.Error("New with missing certificate files succeeded")
	}
	certFile, keyFile := writeSelfSigned(t, t.TempDir(), "x")
	if _, err := New(Config{CertFile: certFile, KeyFile: keyFile}); err == nil {
		t.Error("New without a handler succeeded")
	}
}
