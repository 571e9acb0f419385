package agentcred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultScopes are the space-separated scopes requested when none are
// configured.
const DefaultScopes = "openid email profile groups"

// RefreshMargin is how long before its expiry a cached ID token is replaced,
// so that a token handed out is still good when it reaches kubegate.
const RefreshMargin = 30 * time.Second

// OIDCPasswordConfig configures an OIDCPassword source.
type OIDCPasswordConfig struct {
	// Issuer is the OIDC issuer URL. Its discovery document names the token
	// endpoint, and must name this same issuer. Required.
	Issuer string
	// ClientID is the OAuth2 client, and so the ID token's audience. Required.
	ClientID string
	// ClientSecret authenticates the client with HTTP Basic auth. Empty means
	// a public client: client_id is sent in the form instead.
	ClientSecret string
	// Username and Password are the resource owner's credentials. Both are
	// required. (Dex expects the user's email as the username.)
	Username, Password string
	// Scopes are the scopes requested; "openid" is added if missing, since
	// without it there is no ID token. Nil means those in DefaultScopes.
	Scopes []string
	// HTTPClient talks to the issuer. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// CacheDir holds cached ID tokens, one 0600 file per issuer, client,
	// username and scopes. Empty means no cache: every call logs in.
	CacheDir string
	// Now is the clock that decides whether a cached token is still fresh.
	// Nil means time.Now.
	Now func() time.Time
	// Logger reports problems that do not stop a token from being returned,
	// such as a cache that cannot be written. It never sees a token or a
	// secret. Nil means discard.
	Logger *slog.Logger
}

// OIDCPassword logs in with the resource-owner password grant and returns
// the ID token, reusing a cached one until RefreshMargin before it expires.
type OIDCPassword struct {
	cfg    OIDCPasswordConfig
	scopes []string
	key    string
	cache  *tokenCache
	http   *http.Client
	now    func() time.Time
	log    *slog.Logger
}

// NewOIDCPassword validates cfg and returns the source.
func NewOIDCPassword(cfg OIDCPasswordConfig) (*OIDCPassword, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("oidc issuer %q is not an http(s) URL", cfg.Issuer)
	}
	switch {
	case cfg.ClientID == "":
		return nil, errors.New("oidc password grant: no client ID")
	case cfg.Username == "":
		return nil, errors.New("oidc password grant: no username")
	case cfg.Password == "":
		return nil, errors.New("oidc password grant: no password")
	}
	s := &OIDCPassword{cfg: cfg, http: cfg.HTTPClient, now: cfg.Now, log: cfg.Logger}
	s.scopes = slices.Clone(cfg.Scopes)
	if s.scopes == nil {
		s.scopes = strings.Fields(DefaultScopes)
	}
	if !slices.Contains(s.scopes, "openid") {
		s.scopes = append([]string{"openid"}, s.scopes...)
	}
	s.key = cacheKey(cfg.Issuer, cfg.ClientID, cfg.Username, s.scopes)
	if cfg.CacheDir != "" {
		s.cache = &tokenCache{dir: cfg.CacheDir}
	}
	if s.http == nil {
		s.http = http.DefaultClient
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Token returns the cached ID token if it is good for more than
// RefreshMargin, and otherwise logs in and caches the new one.
func (s *OIDCPassword) Token(ctx context.Context) (string, time.Time, error) {
	if s.cache != nil {
		tok, exp, ok, err := s.cache.load(s.key)
		if err != nil {
			s.log.Warn("ignoring the token cache", "dir", s.cache.dir, "err", err)
		}
		if ok && s.now().Before(exp.Add(-RefreshMargin)) {
			return tok, exp, nil
		}
	}
	tok, err := s.login(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	exp, err := jwtExpiry(tok)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oidc password grant at %s: id_token: %w", s.cfg.Issuer, err)
	}
	if s.cache != nil && !exp.IsZero() {
		if err := s.cache.store(s.key, tok); err != nil {
			s.log.Warn("not caching the ID token", "dir", s.cache.dir, "err", err)
		}
	}
	return tok, exp, nil
}
