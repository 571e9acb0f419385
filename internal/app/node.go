package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/cluster/raftnode"
	"github.com/kubegate/kubegate/console"
	"github.com/kubegate/kubegate/gateway"
	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/notify"
	"github.com/kubegate/kubegate/policy"
	"github.com/kubegate/kubegate/tlsfront"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// Node is one running kubegate: the gateway listener and the admin listener.
type Node struct {
	log     *slog.Logger
	gw      *gateway.Gateway
	front   *tlsfront.Server
	admin   *http.Server
	ln      net.Listener
	adminLn net.Listener
	sink    *audit.Spool
	raft    *raftnode.Node
	hooks   []*notify.Webhook
	drain   time.Duration
	pprof   bool
	console *console.Console // nil when the console is off
}

// New builds a node from cfg and binds its listeners, so that Addr and
// AdminAddr are known before Run.
func New(cfg *Config, log *slog.Logger) (n *Node, err error) {
	if log == nil {
		log = slog.Default()
	}
	// The Kubernetes libraries log through klog; send it to our logger.
	klog.SetSlogLogger(log.With("component", "k8s"))
	restCfg, err := upstreamConfig(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	upstream, err := url.Parse(restCfg.Host)
	if err != nil || upstream.Scheme != "https" {
		return nil, fmt.Errorf("upstream: apiserver URL %q must be https", restCfg.Host)
	}
	transport, err := rest.TransportFor(restCfg)
	if err != nil {
		return nil, fmt.Errorf("upstream transport: %w", err)
	}
	authn, err := identity.New(identityConfig(cfg.Identity))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	engine, err := policy.New(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	reg := prometheus.NewRegistry()
	sink, err := openSpool(context.Background(), cfg, reg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sink.Close()
		}
	}()
	hooks, err := webhooks(cfg.Approvals.Webhooks, log)
	if err != nil {
		return nil, err
	}
	var notifier notify.Multi
	for _, h := range hooks {
		notifier = append(notifier, h)
	}
	var masker *k8swire.Masker
	if mc, ok := cfg.Masking.MaskConfig(); ok {
		if masker, err = k8swire.NewMasker(mc); err != nil {
			return nil, fmt.Errorf("masking: %w", err)
		}
	}
	var gwRef *gateway.Gateway // for peers' session calls, set below
	rn, err := openCluster(cfg.Cluster, &gwRef, log)
	if err != nil {
		return nil, fmt.Errorf("approval state in %s: %w", cfg.Cluster.DataDir, err)
	}
	defer func() {
		if err != nil {
			rn.Close()
		}
	}()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newRaftCollector(rn))
	approvals := newTimedApprovals(rn, reg)
	gw, err := gateway.New(gateway.Config{
		Upstream: upstream, Transport: transport, Authenticator: authn, Policy: engine,
		Audit: sink, Metrics: gateway.NewMetrics(reg), Log: log,
		StreamUpstream: restCfg, Recorder: recorder(cfg.Audit.Recordings.Dir),
		ForwardCapture: forwardCapture(cfg.Audit.Recordings.Dir),
		Approvals:      approvals, GrantApprovers: engine.DefaultApprovers(), NodeID: cfg.Cluster.NodeID,
		MaxGrantDuration: time.Duration(cfg.Approvals.MaxGrantDuration), GrantRequestTTL: time.Duration(cfg.Approvals.GrantRequestTTL),
		Notifier: notifier, Masker: masker, MaskExemptGroups: cfg.Masking.ExemptGroups,
		Limits: gateway.Limits{
			RequestsPerSecond: cfg.Limits.RequestsPerSecond, Burst: cfg.Limits.Burst, MaxStreams: cfg.Limits.MaxStreams,
		},
		MaxBodyBytes: cfg.Limits.MaxBodyBytes, BodyReadTimeout: time.Duration(cfg.Limits.BodyReadTimeout),
		MaxFrameBytes: cfg.Limits.MaxFrameBytes,
	})
	if err != nil {
		return nil, err
	}
	gwRef = gw
	n = &Node{log: log, gw: gw, sink: sink, raft: rn, hooks: hooks, drain: time.Duration(cfg.DrainTimeout), pprof: cfg.Admin.Pprof}
	if n.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer func() {
		if err != nil {
			n.ln.Close()
		}
	}()
	n.console, err = newConsole(cfg, gw, authn, approvals, engine.DefaultApprovers().Groups,
		clusterSessions{node: rn, gw: gw, log: log}, n.ln.Addr(), log)
	if err != nil {
		return nil, err
	}
	front, err := tlsfront.New(tlsfront.Config{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, Handler: withConsole(gw, n.console), Log: log,
		HandshakeTimeout: time.Duration(cfg.Limits.HandshakeTimeout), ReadHeaderTimeout: time.Duration(cfg.Limits.ReadHeaderTimeout),
		IdleTimeout: time.Duration(cfg.Limits.IdleTimeout), MaxHeaderBytes: cfg.Limits.MaxHeaderBytes,
		MaxConnections: cfg.Limits.MaxConnections, Registerer: reg})
	if err != nil {
		return nil, err
	}
	n.front = front
	n.admin = &http.Server{Handler: n.adminHandler(reg), ReadHeaderTimeout: 10 * time.Second}
	if n.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		return nil, fmt.Errorf("admin listener on %s: %w", cfg.Admin.Listen, err)
	}
	return n, nil
}

func upstreamConfig(u UpstreamConfig) (*rest.Config, error) {
	if u.Kubeconfig == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("upstream: no kubeconfig given and not in a cluster: %w", err)
		}
		return c, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: u.Kubeconfig}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: u.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("upstream kubeconfig %s: %w", u.Kubeconfig, err)
	}
	if c.Impersonate.UserName != "" || len(c.Impersonate.Groups) > 0 {
		return nil, errors.New("upstream kubeconfig must not impersonate: kubegate sets impersonation per request")
	}
	return c, nil
}

func identityConfig(c IdentityConfig) identity.Config {
	out := identity.Config{CacheSize: c.CacheSize}
	for _, is := range c.Issuers {
		skew, _ := time.ParseDuration(is.ClockSkew) // validated by LoadConfig
		out.Issuers = append(out.Issuers, identity.IssuerConfig{
			Name: is.Name, URL: is.URL, Audience: is.Audience, CAFile: is.CAFile, Kind: is.Kind,
			UsernameClaim: is.UsernameClaim, UsernamePrefix: is.UsernamePrefix,
			GroupsClaim: is.GroupsClaim, GroupsPrefix: is.GroupsPrefix,
			RequiredClaims: is.RequiredClaims, ClockSkew: skew,
		})
	}
	return out
}

func (n *Node) adminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := n.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	sessions := clusterSessions{node: n.raft, gw: n.gw, log: n.log}.handler()
	mux.Handle("GET /sessions", sessions)
	mux.Handle("POST /sessions/{id}/kill", sessions)
	members := clusterHandler(n.raft)
	mux.Handle("GET /cluster", members)
	mux.Handle("POST /cluster/members", members)
	mux.Handle("DELETE /cluster/members/{id}", members)
	if n.pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// ConsoleURL is the web console's address, or "" when it is off.
func (n *Node) ConsoleURL() string {
	if n.console == nil {
		return ""
	}
	return n.console.URL()
}

// Addr is the gateway's listening address.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// AdminAddr is the admin listener's address.
func (n *Node) AdminAddr() string { return n.adminLn.Addr().String() }

// Ready reports whether the node can serve: the approval state has a
// leader, and the gateway is ready (see gateway.Gateway.Ready).
func (n *Node) Ready(ctx context.Context) error {
	if err := n.raft.Ready(); err != nil {
		return fmt.Errorf("approval state: %w", err)
	}
	return n.gw.Ready(ctx)
}

// Run serves until ctx ends, then shuts both listeners down and closes the
// audit sink.
func (n *Node) Run(ctx context.Context) error {
	defer n.sink.Close()
	defer n.raft.Close()
	hctx, hcancel := context.WithCancel(context.Background())
	// The sinks drain until the node has stopped serving and its sessions
	// have ended, so that their last events go out too.
	n.sink.Run(hctx)
	var hooksDone sync.WaitGroup
	for _, h := range n.hooks {
		hooksDone.Go(func() { _ = h.Run(hctx) })
	}
	defer hooksDone.Wait()
	defer hcancel()
	hooksDone.Go(func() { n.pruneApprovals(hctx) })
	adminErr := make(chan error, 1)
	go func() { adminErr <- n.admin.Serve(n.adminLn) }()
	n.log.Info("kubegate serving", "addr", n.Addr(), "admin", n.AdminAddr())
	if n.console != nil {
		n.log.Info("web console serving", "url", n.console.URL())
		stop := context.AfterFunc(ctx, n.console.Shutdown) // its event streams end, so shutdown need not wait for them
		defer stop()
	}
	err := n.front.Serve(ctx, n.ln)
	// The listener no longer accepts; streams in progress get until the
	// drain deadline to finish, then are closed with a message (their
	// recordings are completed as they end).
	// Hand leadership to another node first, so approvals go on while this
	// one drains (a no-op when alone or not the leader).
	tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := n.raft.TransferLeadership(tctx); err != nil {
		n.log.Warn("transferring Raft leadership", "err", err)
	}
	tcancel()
	dctx, dcancel := context.WithTimeout(context.Background(), n.drain)
	n.gw.Sessions().Drain(dctx, "kubegate is shutting down")
	dcancel()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.admin.Shutdown(sctx)
	if aerr := <-adminErr; err == nil && !errors.Is(aerr, http.ErrServerClosed) {
		err = aerr
	}
	return err
}

// approvalRetention is how long decided access requests and ended grants
// stay in the approval state; the audit log keeps them for good.
const approvalRetention = 24 * time.Hour

// pruneApprovals drops decided requests and ended grants older than
// approvalRetention, hourly, so the replicated state stays small.
func (n *Node) pruneApprovals(ctx context.Context) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		res, err := n.raft.Apply(ctx, cluster.Command{Op: cluster.OpPrune, Now: now, Before: now.Add(-approvalRetention)})
		if err == nil {
			err = res.Err
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("pruning the approval state", "err", err)
		}
	}
}

// webhooks builds the notification webhooks.
func webhooks(cfgs []WebhookConfig, log *slog.Logger) ([]*notify.Webhook, error) {
	var out []*notify.Webhook
	for i, c := range cfgs {
		headers, err := readHeaders(c.HeadersFile)
		if err != nil {
			return nil, fmt.Errorf("approvals.webhooks[%d]: %w", i, err)
		}
		var client *http.Client // nil: notify's default (system roots, no redirects)
		if c.CAFile != "" {
			rt, err := rest.TransportFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile}})
			if err != nil {
				return nil, fmt.Errorf("approvals.webhooks[%d].caFile: %w", i, err)
			}
			client = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		w, err := notify.NewWebhook(notify.WebhookConfig{
			URL: c.URL, Format: notify.Format(c.Format), Headers: headers, Client: client,
			Log: log.With("component", "webhook", "webhook", i),
		})
		if err != nil {
			return nil, fmt.Errorf("approvals.webhooks[%d]: %w", i, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// readHeaders reads "Name: value" lines.
func readHeaders(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("headers file: %w", err)
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("headers file %s line %d: want \"Name: value\"", path, i+1)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// recorder records each exec and attach session as an asciicast v2 file.
func recorder(dir string) gateway.Recorder {
	return func(s gateway.SessionInfo) (gateway.SessionRecording, error) {
		st := s.Request.Stream
		kind := s.Request.Subresource
		title := fmt.Sprintf("kubectl %s %s/%s", kind, s.Request.Namespace, s.Request.Name)
		if len(st.Command) > 0 {
			title += " -- " + strings.Join(st.Command, " ")
		}
		return audit.NewRecording(audit.RecordingConfig{
			Dir: dir, SessionID: s.ID, Command: st.Command, Title: title, SizeFromFirstResize: st.TTY,
			Meta: map[string]string{
				"session_id": s.ID, "audit_id": s.ID, "kind": kind, "user": s.Principal.User,
				"namespace": s.Request.Namespace, "pod": s.Request.Name, "container": st.Container,
				"tty": strconv.FormatBool(st.TTY), "stdin": strconv.FormatBool(st.Stdin),
			},
		})
	}
}

// forwardCapture writes the bytes of one port-forwarded connection to
// DIR/<date>/<session>-<port>-<request>.pfcap, in upgrade's capture records.
func forwardCapture(dir string) func(sessionID string, port int32, requestID string) (io.WriteCloser, error) {
	return func(sessionID string, port int32, requestID string) (io.WriteCloser, error) {
		day := filepath.Join(dir, time.Now().UTC().Format("2006-01-02"))
		if err := os.MkdirAll(day, 0o750); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%s-%d-%s.pfcap", sessionID, port, requestID)
		return os.OpenFile(filepath.Join(day, filepath.Base(name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	}
}
