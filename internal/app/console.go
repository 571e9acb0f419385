package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kubegate/kubegate/console"
	"github.com/kubegate/kubegate/gateway"
)

// newConsole builds the web console of cfg.Console, or nil when it is off.
// addr is the gateway's bound address, for the default URL.
func newConsole(cfg *Config, gw *gateway.Gateway, authn gateway.Authenticator, approvals gateway.Approvals,
	defaultApprovers []string, sessions clusterSessions, addr net.Addr, log *slog.Logger) (*console.Console, error) {
	cc := cfg.Console
	if !cc.Enabled {
		return nil, nil
	}
	is, err := cfg.consoleIssuer()
	if err != nil {
		return nil, err
	}
	clientID := cc.ClientID
	if clientID == "" {
		clientID = is.Audience
	}
	var secret string
	if cc.ClientSecretFile != "" {
		b, err := os.ReadFile(cc.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("console.clientSecretFile: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	client, err := issuerHTTPClient(is.CAFile)
	if err != nil {
		return nil, fmt.Errorf("console: issuer %s: %w", is.URL, err)
	}
	base := cc.URL
	if base == "" {
		base = "https://" + addr.String()
	}
	approvers := cc.ApproverGroups
	if len(approvers) == 0 {
		approvers = defaultApprovers
	}
	return console.New(console.Config{
		Issuer: is.URL, ClientID: clientID, ClientSecret: secret, IssuerClient: client, BaseURL: strings.TrimSuffix(base, "/"),
		Authenticator: authn, API: gw, Approvals: approvals,
		ApproverGroups: approvers, AuditorGroups: cc.AuditorGroups,
		Sessions: consoleSessions{sessions}, RecordingsDir: cfg.Audit.Recordings.Dir, AuditFile: cfg.Audit.File.Path,
		NodeID:     cfg.Cluster.NodeID,
		SessionTTL: time.Duration(cc.SessionTTL), Log: log.With("component", "console"),
	})
}

// issuerHTTPClient trusts caFile, or the system roots when it is empty.
func issuerHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, nil
}

// consoleSessions gives the console the cluster-wide sessions.
type consoleSessions struct{ c clusterSessions }

func (s consoleSessions) List(ctx context.Context) ([]gateway.LiveSession, []string) {
	return s.c.list(ctx)
}

func (s consoleSessions) Kill(ctx context.Context, id, reason string) (bool, error) {
	return s.c.kill(ctx, id, reason)
}

// withConsole serves the console under /ui/ and everything else with the
// gateway. Paths are compared as they came, with no cleaning, so the
// gateway sees every other path exactly as before.
func withConsole(gw http.Handler, c *console.Console) http.Handler {
	if c == nil {
		return gw
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/ui" || strings.HasPrefix(p, console.Prefix) {
			c.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})
}
