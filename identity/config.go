package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Issuer kinds.
const (
	// KindOIDC is an OpenID Connect identity provider such as Dex: the
	// username and groups come from the claims the config names.
	KindOIDC = "oidc"
	// KindKubernetes is a cluster's ServiceAccount token issuer: the
	// principal is derived from the claims the way kube-apiserver does it.
	KindKubernetes = "kubernetes"
)

// Defaults and limits.
const (
	// DefaultCacheSize is the number of verified tokens kept when
	// Config.CacheSize is zero.
	DefaultCacheSize = 10000
	// DefaultClockSkew is the skew allowed when IssuerConfig.ClockSkew is zero.
	DefaultClockSkew = 30 * time.Second
	// MaxClockSkew is the largest ClockSkew New accepts: a larger one hides a
	// broken clock. (It also keeps go-oidc's own nbf leeway of five minutes,
	// measured from the skew-shifted clock, looser than ours, so the skew
	// configured here is the one that applies.)
	MaxClockSkew = 2 * time.Minute
	// DefaultHTTPTimeout bounds one discovery or key set fetch when
	// Config.HTTPClient has no Timeout of its own.
	DefaultHTTPTimeout = 10 * time.Second
)

// IssuerConfig describes one trusted token issuer.
type IssuerConfig struct {
	// Name identifies the issuer in errors and logs. "" means URL.
	Name string
	// URL is the issuer URL; a token's iss claim must equal it exactly.
	// Required. It must be https, or http on a loopback IP (tests).
	URL string
	// Audience must be one of the token's aud values. Required.
	Audience string
	// CAFile is a PEM bundle of the CAs that sign the issuer's discovery and
	// key set endpoints. "" means the system roots (or whatever
	// Config.HTTPClient trusts).
	CAFile string
	// Kind is KindOIDC ("" means KindOIDC) or KindKubernetes.
	Kind string
	// UsernameClaim is the claim that holds the username. "" means "sub".
	// KindKubernetes always uses "sub"; any other value is an error there.
	// If it is "email" and the token has email_verified, that must be true.
	UsernameClaim string
	// UsernamePrefix is prepended to the username. "" means none.
	UsernamePrefix string
	// GroupsClaim is the claim that holds the groups, a string or a list of
	// strings. "" means no groups from claims. KindKubernetes derives its
	// groups from the namespace; setting it there is an error.
	GroupsClaim string
	// GroupsPrefix is prepended to every group. "" means none.
	GroupsPrefix string
	// RequiredClaims are top-level claims that must be present with exactly
	// these string values. nil means none.
	RequiredClaims map[string]string
	// ClockSkew is the skew allowed when checking exp, nbf and iat.
	// 0 means DefaultClockSkew; negative or above MaxClockSkew is an error.
	ClockSkew time.Duration
}

// Config configures an Authenticator. New validates it once; it is not
// modified or read again afterwards (RequiredClaims maps are copied).
type Config struct {
	// Issuers are the trusted issuers; at least one, with distinct URLs.
	Issuers []IssuerConfig
	// CacheSize is the number of verified tokens remembered (least recently
	// used are dropped first). 0 means DefaultCacheSize; negative is an error.
	CacheSize int
	// Now is the clock. nil means time.Now.
	Now func() time.Time
	// HTTPClient is the base client for discovery and key set fetches; each
	// issuer's CAFile is applied to a copy of it, which needs its Transport
	// to be nil or an *http.Transport. nil means a client with
	// http.DefaultTransport. A zero Timeout means DefaultHTTPTimeout.
	HTTPClient *http.Client
	// Logger receives issuer availability changes (never tokens or claims).
	// nil means no logging.
	Logger *slog.Logger
}

// normalize checks one issuer's config and returns it with defaults filled in.
func (ic IssuerConfig) normalize() (IssuerConfig, error) {
	if err := checkIssuerURL(ic.URL); err != nil {
		return ic, err
	}
	if ic.Name == "" {
		ic.Name = ic.URL
	}
	if ic.Audience == "" {
		return ic, errors.New("audience is required")
	}
	switch ic.Kind {
	case "":
		ic.Kind = KindOIDC
	case KindOIDC, KindKubernetes:
	default:
		return ic, fmt.Errorf("unknown kind %q (want %q or %q)", ic.Kind, KindOIDC, KindKubernetes)
	}
	if ic.UsernameClaim == "" {
		ic.UsernameClaim = "sub"
	}
	if ic.Kind == KindKubernetes {
		if ic.UsernameClaim != "sub" {
			return ic, fmt.Errorf("kind %s always takes the username from sub, not %q", KindKubernetes, ic.UsernameClaim)
		}
		if ic.GroupsClaim != "" {
			return ic, fmt.Errorf("kind %s derives groups from the namespace; GroupsClaim must be empty", KindKubernetes)
		}
	} else {
		// An IdP must not be able to mint Kubernetes' reserved identities
		// (system:masters, system:serviceaccount:...) through a prefix.
		for _, p := range []string{ic.UsernamePrefix, ic.GroupsPrefix} {
			if strings.HasPrefix(p, reservedPrefix) {
				return ic, fmt.Errorf("prefix %q is in the reserved %q namespace", p, reservedPrefix)
			}
		}
	}
	for k := range ic.RequiredClaims {
		if k == "" {
			return ic, errors.New("RequiredClaims has an empty claim name")
		}
	}
	ic.RequiredClaims = maps.Clone(ic.RequiredClaims)
	switch {
	case ic.ClockSkew == 0:
		ic.ClockSkew = DefaultClockSkew
	case ic.ClockSkew < 0:
		return ic, fmt.Errorf("ClockSkew %v is negative", ic.ClockSkew)
	case ic.ClockSkew > MaxClockSkew:
		return ic, fmt.Errorf("ClockSkew %v is above the maximum %v", ic.ClockSkew, MaxClockSkew)
	}
	return ic, nil
}

// checkIssuerURL accepts https URLs, and http ones on a loopback IP.
func checkIssuerURL(raw string) error {
	if raw == "" {
		return errors.New("URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL: %w", err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("URL %q must be scheme://host[/path], without user, query or fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("URL %q: http is only allowed on a loopback IP", raw)
	default:
		return fmt.Errorf("URL %q: scheme must be https", raw)
	}
}

// issuerClient returns a copy of base (or of a default client) that trusts
// the CAs in caFile, if one is given.
func issuerClient(base *http.Client, caFile string) (*http.Client, error) {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultHTTPTimeout
	}
	if caFile == "" {
		return c, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading CAFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("CAFile %s holds no PEM certificate", caFile)
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("CAFile needs HTTPClient.Transport to be an *http.Transport, not %T", rt)
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = pool
	c.Transport = t
	return c, nil
}
