package tlsfront

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Config configures a Server.
type Config struct {
	// CertFile and KeyFile are the PEM serving certificate and key. They are
	// reloaded when the files change. Required.
	CertFile, KeyFile string
	// Handler serves every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's headers. Zero means 10s.
	// There is deliberately no read or write timeout for bodies: watches,
	// logs -f and upgraded streams last as long as they need.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Zero means 2m.
	IdleTimeout time.Duration
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
	srv     *http.Server
	timeout time.Duration
}

// New validates cfg and prepares the server.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("tlsfront: handler is required")
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tlsfront: certFile and keyFile are required")
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
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
			GetCertificate: certs.getCertificate,
		},
	}
	return &Server{srv: srv, timeout: cfg.ShutdownTimeout}, nil
}

// Serve accepts TLS connections on ln until ctx ends, then shuts down
// gracefully within the shutdown timeout and closes what is left.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.ServeTLS(ln, "", "") }()
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
