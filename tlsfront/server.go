package tlsfront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server.
type Config struct {
	// CertFile and KeyFile are the PEM serving certificate and key. They are
	// reloaded when the files change. Required.
	CertFile, KeyFile string
	// Handler serves every request. Required.
	Handler http.Handler
	// HandshakeTimeout bounds a client's TLS handshake, counted from
	// accepting its connection. Zero means 10s.
	HandshakeTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers. Zero means 10s.
	// There is deliberately no read or write timeout for whole requests
	// here: watches, logs -f and upgraded streams last as long as they
	// need (the gateway bounds ordinary request bodies itself).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Zero means 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block, request line
	// included (HTTP/2: the header list); larger requests get 431. Zero
	// means 1 MiB.
	MaxHeaderBytes int
	// MaxConnections bounds the open client connections, handshaking or
	// served; past it new connections wait in the listen backlog. Zero
	// means 10000; negative means no bound.
	MaxConnections int
	// Registerer receives the front's metrics. Nil registers them nowhere.
	Registerer prometheus.Registerer
	// ShutdownTimeout bounds a graceful shutdown. Zero means 10s.
	ShutdownTimeout time.Duration
	// Log receives server errors (TLS handshake failures and the like). Nil
	// means slog.Default().
	Log *slog.Logger
	// Now is the clock for certificate reload checks. Nil means time.Now.
	Now func() time.Time
}

// Server is kubegate's TLS listener: TLS 1.2 or later (1.3 preferred by Go's
// negotiation), ALPN h2 and http/1.1 (upgrades need http/1.1).
type Server struct {
	srv        *http.Server
	timeout    time.Duration
	handshake  time.Duration
	maxConns   int
	log        *slog.Logger
	handshakes *prometheus.CounterVec
}

// cipherSuites are the TLS 1.2 suites offered: forward-secret key
// exchange and AEAD ciphers only (TLS 1.3's suites are not configurable
// and all modern). TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 is the one
// HTTP/2 requires.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// New validates cfg and prepares the server.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("tlsfront: handler is required")
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tlsfront: certFile and keyFile are required")
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 1 << 20
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 10000
	}
	if cfg.HandshakeTimeout < 0 || cfg.ReadHeaderTimeout < 0 || cfg.IdleTimeout < 0 || cfg.MaxHeaderBytes < 0 {
		return nil, errors.New("tlsfront: timeouts and maxHeaderBytes must not be negative")
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	certs, err := newCertReloader(cfg.CertFile, cfg.KeyFile, cfg.Now)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           cfg.Handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			CipherSuites:   cipherSuites,
			NextProtos:     []string{"h2", "http/1.1"},
			GetCertificate: certs.getCertificate,
		},
	}
	s := &Server{srv: srv, timeout: cfg.ShutdownTimeout, handshake: cfg.HandshakeTimeout, maxConns: cfg.MaxConnections, log: cfg.Log,
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubegate_tls_handshake_failures_total", Help: "Client TLS handshakes that failed, by reason (timeout, error).",
		}, []string{"reason"}),
	}
	s.handshakes.WithLabelValues("timeout")
	s.handshakes.WithLabelValues("error")
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.handshakes); err != nil {
			return nil, fmt.Errorf("tlsfront: registering metrics: %w", err)
		}
	}
	return s, nil
}

// Serve accepts TLS connections on ln until ctx ends, then shuts down
// gracefully within the shutdown timeout and closes what is left.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	// The handshake listener completes each TLS handshake, within its
	// timeout, before the HTTP server sees the connection.
	hl := newHandshakeListener(ln, s.srv.TLSConfig.Clone(), s.handshake, s.maxConns, s.log,
		func(reason string) { s.handshakes.WithLabelValues(reason).Inc() })
	go func() { errc <- s.srv.Serve(hl) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// RegisterOnShutdown registers f to run when the server shuts down; hijacked
// connections (upgraded streams) use it to learn about the shutdown.
func (s *Server) RegisterOnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }
