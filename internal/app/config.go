package app

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/policy"
	"sigs.k8s.io/yaml"
)

// Config is kubegate's configuration file. Every field documents its zero
// value; see examples/kubegate.yaml for a commented example.
type Config struct {
	// Listen is the gateway's TLS address. Empty means 127.0.0.1:8443.
	Listen string `json:"listen"`
	// TLS holds the gateway's serving certificate, reloaded on change.
	TLS TLSConfig `json:"tls"`
	// Admin serves /livez, /readyz and /metrics over plain HTTP.
	Admin AdminConfig `json:"admin"`
	// Upstream is the apiserver kubegate forwards to.
	Upstream UpstreamConfig `json:"upstream"`
	// Identity lists the token issuers kubegate trusts.
	Identity IdentityConfig `json:"identity"`
	// Policy holds the ordered rules.
	Policy policy.Config `json:"policy"`
	// Audit configures where audit events go.
	Audit AuditConfig `json:"audit"`
	// Masking hides secret values from responses, streams and storage.
	Masking MaskingConfig `json:"masking"`
	// Cluster configures the replicated approval state.
	Cluster ClusterConfig `json:"cluster"`
	// Approvals configures requests for grants and notifications.
	Approvals ApprovalsConfig `json:"approvals"`
	// Console serves the web console for approvers and auditors under
	// /ui/ on the gateway's listener. The zero value serves none.
	Console ConsoleConfig `json:"console"`
	// Limits bound what each user and connection may take of kubegate.
	// The zero value is sensible defaults, on.
	Limits LimitsConfig `json:"limits"`
	// DrainTimeout is how long open exec, attach and port-forward sessions
	// may go on after SIGTERM before they are closed. Zero means 30s.
	DrainTimeout policy.Duration `json:"drainTimeout"`
}

// LimitsConfig bounds what clients may take of kubegate; refusals are a
// Kubernetes Status (429, 408, 413 or 431) and count in
// kubegate_limit_refusals_total{limit} or
// kubegate_tls_handshake_failures_total{reason}. Every zero value means
// the default given; a negative number turns that limit off. SPDY control
// frames (64 KiB) and header blocks (32 fields of 8 KiB) have fixed bounds.
type LimitsConfig struct {
	// RequestsPerSecond is each user's sustained request rate (a token
	// bucket); past it requests get 429 with Retry-After. Zero means 100.
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	// Burst is how many requests a user may make at once above the rate.
	// Zero means 3 × requestsPerSecond.
	Burst int `json:"burst"`
	// MaxStreams bounds each user's concurrent exec, attach and
	// port-forward sessions, watches and followed logs (429). Zero means
	// 128.
	MaxStreams int `json:"maxStreams"`
	// MaxBodyBytes bounds the request bodies kubegate reads to decide on
	// (413). Zero means 3 MiB, the apiserver's own limit.
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// MaxHeaderBytes bounds a request's headers (431). Zero means 1 MiB.
	MaxHeaderBytes int `json:"maxHeaderBytes"`
	// MaxFrameBytes bounds a client's SPDY data frames and WebSocket frames
	// on exec, attach and port-forward; a larger one ends the session.
	// Zero means 256 KiB (kubectl sends at most 32 KiB).
	MaxFrameBytes int `json:"maxFrameBytes"`
	// BodyReadTimeout bounds sending the body of a request that is not
	// long-running (watches, logs, proxies and streams are): a slower body
	// gets 408 and its connection is closed. Zero means 30s.
	BodyReadTimeout policy.Duration `json:"bodyReadTimeout"`
	// HandshakeTimeout bounds a client's TLS handshake. Zero means 10s.
	HandshakeTimeout policy.Duration `json:"handshakeTimeout"`
	// ReadHeaderTimeout bounds reading a request's headers. Zero means 10s.
	ReadHeaderTimeout policy.Duration `json:"readHeaderTimeout"`
	// IdleTimeout closes keep-alive connections idle this long. Zero
	// means 2m.
	IdleTimeout policy.Duration `json:"idleTimeout"`
	// MaxConnections bounds open client connections; past it new ones
	// wait in the listen backlog. Zero means 10000.
	MaxConnections int `json:"maxConnections"`
}

func (l LimitsConfig) validate() error {
	switch {
	case math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0):
		return errors.New("limits.requestsPerSecond must be a number")
	case l.Burst < 0:
		return errors.New("limits.burst must not be negative (turn the rate limit off with a negative requestsPerSecond)")
	case l.MaxBodyBytes < 0 || l.MaxHeaderBytes < 0 || l.MaxFrameBytes < 0:
		return errors.New("limits.maxBodyBytes, maxHeaderBytes and maxFrameBytes must not be negative: requests always have a size bound")
	case l.MaxFrameBytes > 1<<24:
		return errors.New("limits.maxFrameBytes must be at most 16 MiB (SPDY's largest frame)")
	case l.HandshakeTimeout < 0 || l.ReadHeaderTimeout < 0 || l.IdleTimeout < 0:
		return errors.New("limits.handshakeTimeout, readHeaderTimeout and idleTimeout must not be negative")
	}
	return nil
}

// MaskingConfig configures masking; see k8swire.MaskConfig. The zero value
// masks Secret values and the built-in patterns.
type MaskingConfig struct {
	// Disabled turns masking off entirely. False masks.
	Disabled bool `json:"disabled"`
	// DefaultRules (Secret data, stringData, last-applied annotation) and
	// DefaultPatterns (JWTs, private keys, AWS key ids, Bearer tokens).
	// Unset means true.
	DefaultRules    *bool `json:"defaultRules"`
	DefaultPatterns *bool `json:"defaultPatterns"`
	// Rules mask further fields, e.g. ConfigMap keys or env values.
	Rules []k8swire.MaskRule `json:"rules"`
	// Patterns are further Go regexps for values anywhere.
	Patterns []string `json:"patterns"`
	// ExemptGroups see raw values (break glass); every such response is
	// audited. Stored copies are masked regardless.
	ExemptGroups []string `json:"exemptGroups"`
	// MaxPatternLen and MaxWatchEvent: see k8swire.MaskConfig; zero means
	// its defaults.
	MaxPatternLen int `json:"maxPatternLen"`
	MaxWatchEvent int `json:"maxWatchEvent"`
}

// MaskConfig is the masking engine's configuration; ok is false when
// masking is disabled.
func (m MaskingConfig) MaskConfig() (c k8swire.MaskConfig, ok bool) {
	if m.Disabled {
		return k8swire.MaskConfig{}, false
	}
	on := func(b *bool) bool { return b == nil || *b }
	return k8swire.MaskConfig{
		DefaultRules: on(m.DefaultRules), DefaultPatterns: on(m.DefaultPatterns),
		Rules: m.Rules, Patterns: m.Patterns, MaxPatternLen: m.MaxPatternLen, MaxWatchEvent: m.MaxWatchEvent,
	}, true
}

// ClusterConfig configures this node's share of the approval state (held
// requests, approvals, grants), kept with Raft.
type ClusterConfig struct {
	// NodeID names this node. Empty means "kubegate".
	NodeID string `json:"nodeID"`
	// DataDir holds the Raft log and snapshots. Empty means a "raft"
	// folder beside the audit file.
	DataDir string `json:"dataDir"`
	// Bind is the peer address (Raft and node-to-node calls, mutual TLS).
	// Empty means a single node with no peer listener.
	Bind string `json:"bind"`
	// Advertise is the address other nodes dial. Empty means Bind.
	Advertise string `json:"advertise"`
	// Bootstrap starts a new cluster of this node alone, when DataDir
	// holds no state yet. BootstrapNodeID does the same for the node whose
	// NodeID it names, so that one config serves every node.
	Bootstrap       bool   `json:"bootstrap"`
	BootstrapNodeID string `json:"bootstrapNodeID"`
	// Join lists peer addresses to ask for membership when DataDir holds
	// no state and this node does not bootstrap. This node's own address
	// may be among them.
	Join []string `json:"join"`
	// TLS is the node's peer certificate and the cluster CA; required with
	// Bind. Peers must present a certificate from this CA.
	TLS PeerTLSConfig `json:"tls"`
}

// PeerTLSConfig names a node's peer certificate, its key and the CA every
// node's certificate is signed by.
type PeerTLSConfig struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	CAFile   string `json:"caFile"`
}

// ApprovalsConfig configures requests for time-bound grants and who is
// told about access requests. Who may approve is the policy's approvers.
type ApprovalsConfig struct {
	// MaxGrantDuration bounds what a grant may ask for. Zero means 8h.
	MaxGrantDuration policy.Duration `json:"maxGrantDuration"`
	// GrantRequestTTL is how long a request for a grant waits for a
	// decision. Zero means 1h.
	GrantRequestTTL policy.Duration `json:"grantRequestTTL"`
	// Webhooks are posted every new access request and every decision.
	Webhooks []WebhookConfig `json:"webhooks"`
}

// WebhookConfig is one notification webhook.
type WebhookConfig struct {
	// URL receives a POST per event. Required.
	URL string `json:"url"`
	// Format is "json" (the default) or "slack" (a Slack-compatible
	// incoming webhook payload).
	Format string `json:"format"`
	// HeadersFile names a file of "Name: value" lines sent with every
	// post (e.g. an Authorization header); kept out of the config so the
	// config holds no secret. Empty means none.
	HeadersFile string `json:"headersFile"`
	// CAFile verifies an https receiver. Empty means the system roots.
	CAFile string `json:"caFile"`
}

// ConsoleConfig configures the web console (see package console).
type ConsoleConfig struct {
	// Enabled serves the console under /ui/. False, the default, serves
	// none.
	Enabled bool `json:"enabled"`
	// Issuer is the name or URL of the identity issuer people sign in
	// with. Empty means the first OIDC issuer of identity.issuers.
	Issuer string `json:"issuer"`
	// ClientID is the OAuth2 client the console signs in as; its ID tokens
	// must carry the issuer's audience. Empty means that audience. Its
	// redirect URL, URL + "/ui/callback", must be registered with the
	// issuer.
	ClientID string `json:"clientID"`
	// ClientSecretFile holds the client's secret. Empty means a public
	// client, protected by PKCE alone.
	ClientSecretFile string `json:"clientSecretFile"`
	// URL is the console's external origin, "https://host:port". Empty
	// means https:// and the gateway's listening address.
	URL string `json:"url"`
	// ApproverGroups may decide on access requests and kill sessions in
	// the console. Empty means the policy's default approvers.
	ApproverGroups []string `json:"approverGroups"`
	// AuditorGroups may see everything and change nothing. Empty means
	// nobody.
	AuditorGroups []string `json:"auditorGroups"`
	// SessionTTL bounds a console session; it never outlives the ID token.
	// Zero means 8h.
	SessionTTL policy.Duration `json:"sessionTTL"`
}

// consoleIssuer returns the identity issuer the console signs in with.
func (c *Config) consoleIssuer() (IssuerConfig, error) {
	for _, is := range c.Identity.Issuers {
		if is.Kind == "kubernetes" {
			continue
		}
		if c.Console.Issuer == "" || c.Console.Issuer == is.Name || c.Console.Issuer == is.URL {
			return is, nil
		}
	}
	if c.Console.Issuer == "" {
		return IssuerConfig{}, errors.New("console: identity.issuers has no OIDC issuer to sign in with")
	}
	return IssuerConfig{}, fmt.Errorf("console.issuer %q names no OIDC issuer of identity.issuers", c.Console.Issuer)
}

// TLSConfig names the serving certificate and key files. Both are required.
type TLSConfig struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// AdminConfig configures the admin listener.
type AdminConfig struct {
	// Listen is the admin address. Empty means 127.0.0.1:9443.
	Listen string `json:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on the admin
	// listener (never on the gateway's). False, the default, leaves them
	// off.
	Pprof bool `json:"pprof"`
}

// UpstreamConfig names kubegate's own credential for the apiserver.
type UpstreamConfig struct {
	// Kubeconfig is a kubeconfig file with kubegate's credential (client
	// certificate, token or exec plugin). Empty means in-cluster config.
	Kubeconfig string `json:"kubeconfig"`
	// Context selects a kubeconfig context. Empty means the current one.
	Context string `json:"context"`
}

// IdentityConfig configures token verification.
type IdentityConfig struct {
	// Issuers are the trusted token issuers. At least one is required.
	Issuers []IssuerConfig `json:"issuers"`
	// CacheSize bounds the verified-token cache. Zero means 10000.
	CacheSize int `json:"cacheSize"`
}

// IssuerConfig is one trusted issuer; see identity.IssuerConfig.
type IssuerConfig struct {
	Name           string            `json:"name"`
	URL            string            `json:"url"`
	Audience       string            `json:"audience"`
	CAFile         string            `json:"caFile"`
	Kind           string            `json:"kind"`
	UsernameClaim  string            `json:"usernameClaim"`
	UsernamePrefix string            `json:"usernamePrefix"`
	GroupsClaim    string            `json:"groupsClaim"`
	GroupsPrefix   string            `json:"groupsPrefix"`
	RequiredClaims map[string]string `json:"requiredClaims"`
	// ClockSkew is a Go duration ("30s"). Empty means the identity default.
	ClockSkew string `json:"clockSkew"`
}

// AuditConfig configures audit sinks and session recordings.
type AuditConfig struct {
	// File is the local JSON-lines log every event is written to before
	// its request completes (the spool). Its path is required.
	File FileSinkConfig `json:"file"`
	// Recordings configures where exec and attach sessions are recorded.
	Recordings RecordingsConfig `json:"recordings"`
	// Spool bounds what waits in the local log for the sinks.
	Spool SpoolConfig `json:"spool"`
	// Sinks are stores outside the cluster the log is streamed to. None
	// means the local log only.
	Sinks []AuditSinkConfig `json:"sinks"`
}

// SpoolConfig bounds undelivered events.
type SpoolConfig struct {
	// StateDir holds each sink's cursor. Empty means "spool" beside the
	// audit file.
	StateDir string `json:"stateDir"`
	// MaxBacklogBytes bounds, per sink, the bytes of events not yet
	// delivered. Zero means 1 GiB; negative means no bound.
	MaxBacklogBytes int64 `json:"maxBacklogBytes"`
	// OnFull is what happens past the bound: "fail-closed" (the default:
	// new requests get 503 until the sink catches up) or "drop-oldest"
	// (the sink's oldest events are dropped, with a warning, a metric and
	// an audit event).
	OnFull string `json:"onFull"`
}

// AuditSinkConfig is one sink: exactly one of Webhook and S3.
type AuditSinkConfig struct {
	// Name names the sink in metrics, logs and its cursor file: lower
	// case letters, digits and dashes. Empty means "webhook" or "s3".
	Name    string              `json:"name"`
	Webhook *AuditWebhookConfig `json:"webhook"`
	S3      *AuditS3Config      `json:"s3"`
}

// AuditWebhookConfig sends batches of events as JSON lines.
type AuditWebhookConfig struct {
	URL string `json:"url"`
	// BearerTokenFile, if set, holds a token sent as Authorization.
	BearerTokenFile string `json:"bearerTokenFile"`
	// CAFile, if set, is a PEM bundle to trust for the URL.
	CAFile string `json:"caFile"`
}

// AuditS3Config stores event batches and recordings in an S3-compatible
// bucket.
type AuditS3Config struct {
	// Endpoint is the store's URL. Empty means AWS S3.
	Endpoint string `json:"endpoint"`
	// Region: empty means us-east-1.
	Region string `json:"region"`
	Bucket string `json:"bucket"`
	// Prefix goes before every key, e.g. "kubegate/".
	Prefix string `json:"prefix"`
	// PathStyle addresses the bucket in the path (MinIO, versitygw).
	PathStyle bool `json:"pathStyle"`
	// CAFile, if set, is a PEM bundle to trust for Endpoint.
	CAFile string `json:"caFile"`
	// AccessKeyIDFile and SecretAccessKeyFile hold the credentials.
	// Empty means the SDK's default chain (AWS_ACCESS_KEY_ID, ...).
	AccessKeyIDFile     string `json:"accessKeyIDFile"`
	SecretAccessKeyFile string `json:"secretAccessKeyFile"`
}

// RecordingsConfig configures session recordings (asciicast v2).
type RecordingsConfig struct {
	// Dir holds the recordings, one folder per day. Empty means a
	// "recordings" folder beside the audit file.
	Dir string `json:"dir"`
}

// FileSinkConfig configures the local file sink.
type FileSinkConfig struct {
	Path string `json:"path"`
	// MaxSizeBytes rotates the file past this size. Zero means 100 MiB;
	// negative means never.
	MaxSizeBytes int64 `json:"maxSizeBytes"`
	// Fsync syncs after every event, before its request completes.
	Fsync bool `json:"fsync"`
	// MaxAge rotates the file after this long ("24h"). Zero: by size only.
	MaxAge policy.Duration `json:"maxAge"`
	// Retention removes rotated files this old once every sink has stored
	// their events ("720h"). Zero keeps them.
	Retention policy.Duration `json:"retention"`
	// FsyncInterval, without Fsync, syncs this often ("100ms"): a power
	// loss then loses at most that much. Zero leaves it to the OS; a
	// killed process loses nothing either way.
	FsyncInterval policy.Duration `json:"fsyncInterval"`
}

// LoadConfig reads and validates a configuration file. Unknown fields are
// errors, so a typo never silently drops a setting.
func LoadConfig(path string) (*Config, error) {
	return LoadConfigWith(path, nil)
}

// LoadConfigWith is LoadConfig with a change applied before validation,
// such as command-line overrides of per-node settings.
func LoadConfigWith(path string, change func(*Config)) (*Config, error) {
	c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	if change != nil {
		change(c)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// readConfig parses a configuration file strictly, without validating it.
func readConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8443"
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = policy.Duration(30 * time.Second)
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = "127.0.0.1:9443"
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
		return errors.New("tls.certFile and tls.keyFile are required")
	}
	if len(c.Identity.Issuers) == 0 {
		return errors.New("identity.issuers: at least one issuer is required")
	}
	for i, is := range c.Identity.Issuers {
		if is.ClockSkew != "" {
			if _, err := time.ParseDuration(is.ClockSkew); err != nil {
				return fmt.Errorf("identity.issuers[%d].clockSkew: %w", i, err)
			}
		}
	}
	if c.Audit.File.Path == "" {
		return errors.New("audit.file.path is required")
	}
	if c.Audit.Recordings.Dir == "" {
		c.Audit.Recordings.Dir = filepath.Join(filepath.Dir(c.Audit.File.Path), "recordings")
	}
	if err := c.Audit.validateSinks(filepath.Dir(c.Audit.File.Path)); err != nil {
		return err
	}
	if mc, ok := c.Masking.MaskConfig(); ok {
		if err := mc.Validate(); err != nil {
			return fmt.Errorf("masking: %w", err)
		}
	}
	if c.Cluster.NodeID == "" {
		c.Cluster.NodeID = "kubegate"
	}
	if c.Cluster.DataDir == "" {
		c.Cluster.DataDir = filepath.Join(filepath.Dir(c.Audit.File.Path), "raft")
	}
	if cl := c.Cluster; cl.Bind != "" {
		if cl.TLS.CertFile == "" || cl.TLS.KeyFile == "" || cl.TLS.CAFile == "" {
			return errors.New("cluster.tls.certFile, keyFile and caFile are required with cluster.bind: peers talk mutual TLS only")
		}
	} else if cl.Bootstrap || cl.BootstrapNodeID != "" || len(cl.Join) > 0 {
		return errors.New("cluster.bootstrap and cluster.join need cluster.bind")
	}
	for i, w := range c.Approvals.Webhooks {
		if w.URL == "" {
			return fmt.Errorf("approvals.webhooks[%d].url is required", i)
		}
		switch w.Format {
		case "", "json", "slack":
		default:
			return fmt.Errorf("approvals.webhooks[%d].format %q: want json or slack", i, w.Format)
		}
	}
	if c.Console.Enabled {
		if _, err := c.consoleIssuer(); err != nil {
			return err
		}
	}
	if c.Audit.File.MaxSizeBytes == 0 {
		c.Audit.File.MaxSizeBytes = 100 << 20
	}
	if c.Audit.File.MaxSizeBytes < 0 {
		c.Audit.File.MaxSizeBytes = 0
	}
	return nil
}

// LoadPolicyConfig reads only what `kubegate policy check` needs from a
// configuration file: the policy section, with unknown fields still errors.
func LoadPolicyConfig(path string) (*policy.Config, error) {
	c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	return &c.Policy, nil
}
