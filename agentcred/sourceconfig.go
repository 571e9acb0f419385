package agentcred

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// issuerTimeout bounds each request to the OIDC issuer.
const issuerTimeout = 30 * time.Second

// SourceConfig names one credential source as flags: what `kubegate token`
// reads, and what `kubegate kubeconfig` writes into the plugin's arguments.
// It holds file paths, never secrets. The zero value names no source.
type SourceConfig struct {
	// TokenFile is a token file read on every call (--token-file).
	TokenFile string
	// Issuer is an OIDC issuer URL for the password grant (--oidc-issuer).
	Issuer string
	// ClientID is the OAuth2 client (--client-id).
	ClientID string
	// ClientSecretFile holds the client secret (--client-secret-file).
	// Empty means a public client.
	ClientSecretFile string
	// Username is the resource owner (--username).
	Username string
	// PasswordFile holds the password (--password-file).
	PasswordFile string
	// IssuerCAFile is a PEM file of the CAs trusted for the issuer
	// (--oidc-ca). Empty means the system's roots.
	IssuerCAFile string
	// Scopes are the space-separated scopes (--scopes). Empty means
	// DefaultScopes.
	Scopes string
	// CacheDir caches ID tokens (--cache-dir). Empty means DefaultCacheDir.
	CacheDir string
}

// RegisterFlags defines the source's flags on fs, bound to c.
func (c *SourceConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TokenFile, "token-file", "", "read the token from this `file` on every call (a projected ServiceAccount token)")
	fs.StringVar(&c.Issuer, "oidc-issuer", "", "log in to this OIDC issuer `URL` with the password grant")
	fs.StringVar(&c.ClientID, "client-id", "", "OAuth2 client `ID` at the issuer (the ID token's audience)")
	fs.StringVar(&c.ClientSecretFile, "client-secret-file", "", "`file` holding the client secret (none for a public client)")
	fs.StringVar(&c.Username, "username", "", "`user` to log in as (Dex wants the email)")
	fs.StringVar(&c.PasswordFile, "password-file", "", "`file` holding the user's password")
	fs.StringVar(&c.IssuerCAFile, "oidc-ca", "", "PEM `file` of the CAs to trust for the issuer (default: the system's)")
	fs.StringVar(&c.Scopes, "scopes", DefaultScopes, "space-separated `scopes` to request")
	fs.StringVar(&c.CacheDir, "cache-dir", "", "`directory` for cached ID tokens (default $XDG_CACHE_HOME/kubegate/tokens or ~/.cache/kubegate/tokens)")
}

// Validate checks that c names exactly one complete source. (CacheDir is
// allowed, and ignored, with TokenFile.)
func (c SourceConfig) Validate() error {
	const oneSource = "give exactly one credential source: --token-file, or --oidc-issuer with --client-id, --username and --password-file"
	oidcFlags := []struct {
		name, value string
		required    bool
	}{
		{"--client-id", c.ClientID, true},
		{"--client-secret-file", c.ClientSecretFile, false},
		{"--username", c.Username, true},
		{"--password-file", c.PasswordFile, true},
		{"--oidc-ca", c.IssuerCAFile, false},
	}
	switch {
	case c.TokenFile != "" && c.Issuer != "":
		return errors.New("both --token-file and --oidc-issuer: " + oneSource)
	case c.TokenFile != "":
		for _, f := range oidcFlags {
			if f.value != "" {
				return fmt.Errorf("%s goes with --oidc-issuer, not --token-file", f.name)
			}
		}
		return nil
	case c.Issuer != "":
		var missing []string
		for _, f := range oidcFlags {
			if f.required && f.value == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("--oidc-issuer needs %s", strings.Join(missing, ", "))
		}
		if c.Scopes != "" && len(strings.Fields(c.Scopes)) == 0 {
			return errors.New("--scopes is blank")
		}
		return nil
	default:
		return errors.New("no credential source: " + oneSource)
	}
}

// TokenArgs returns the arguments of `kubegate token` for this source, with
// every path made absolute (the plugin runs in whatever directory kubectl
// does). Flags at their defaults are left out.
func (c SourceConfig) TokenArgs() ([]string, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	args := []string{"token"}
	add := func(flag, value string, isPath bool) error {
		if value == "" {
			return nil
		}
		if isPath {
			abs, err := filepath.Abs(value)
			if err != nil {
				return fmt.Errorf("%s %s: %w", flag, value, err)
			}
			value = abs
		}
		args = append(args, flag+"="+value)
		return nil
	}
	scopes := strings.Join(strings.Fields(c.Scopes), " ")
	if scopes == DefaultScopes {
		scopes = ""
	}
	for _, a := range []struct {
		flag, value string
		isPath      bool
	}{
		{"--token-file", c.TokenFile, true},
		{"--oidc-issuer", c.Issuer, false},
		{"--client-id", c.ClientID, false},
		{"--client-secret-file", c.ClientSecretFile, true},
		{"--username", c.Username, false},
		{"--password-file", c.PasswordFile, true},
		{"--oidc-ca", c.IssuerCAFile, true},
		{"--scopes", scopes, false},
		{"--cache-dir", c.CacheDir, true},
	} {
		if err := add(a.flag, a.value, a.isPath); err != nil {
			return nil, err
		}
	}
	return args, nil
}

// NewSource reads the secret files and returns the source c names. log
// receives warnings that do not stop a token (nil: discard).
func (c SourceConfig) NewSource(log *slog.Logger) (Source, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.TokenFile != "" {
		return FileSource{Path: c.TokenFile}, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := OIDCPasswordConfig{Issuer: c.Issuer, ClientID: c.ClientID, Username: c.Username, Logger: log}
	var err error
	if cfg.Password, err = readSecretFile("password", c.PasswordFile); err != nil {
		return nil, err
	}
	if c.ClientSecretFile != "" {
		if cfg.ClientSecret, err = readSecretFile("client secret", c.ClientSecretFile); err != nil {
			return nil, err
		}
	}
	if fields := strings.Fields(c.Scopes); len(fields) > 0 {
		cfg.Scopes = fields
	}
	if cfg.HTTPClient, err = issuerClient(c.IssuerCAFile); err != nil {
		return nil, err
	}
	cfg.CacheDir = c.CacheDir
	if cfg.CacheDir == "" {
		if cfg.CacheDir, err = DefaultCacheDir(); err != nil {
			log.Warn("not caching ID tokens: no cache directory; pass --cache-dir", "err", err)
		}
	}
	return NewOIDCPassword(cfg)
}

// readSecretFile returns the file's contents without a trailing line end.
// Errors name the file, never its contents.
func readSecretFile(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s file %s: %w", what, path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	return s, nil
}

// issuerClient returns the HTTP client for the issuer, trusting only the
// CAs in caFile when it is set.
func issuerClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading OIDC CA file %s: %w", caFile, err)
		}
		if err := checkCertsPEM(pemBytes); err != nil {
			return nil, fmt.Errorf("OIDC CA file %s: %w", caFile, err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: issuerTimeout}, nil
}
