package identity

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// roundTripperFunc is an http.RoundTripper that is not an *http.Transport.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := IssuerConfig{URL: "https://dex.example.com", Audience: "kubegate"}
	with := func(f func(*IssuerConfig)) Config {
		ic := ok
		f(&ic)
		return Config{Issuers: []IssuerConfig{ic}}
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means New succeeds
	}{
		{"minimal", Config{Issuers: []IssuerConfig{ok}}, ""},
		{"http on loopback", with(func(c *IssuerConfig) { c.URL = "http://127.0.0.1:5556/dex" }), ""},
		{"http on IPv6 loopback", with(func(c *IssuerConfig) { c.URL = "http://[::1]:5556" }), ""},
		{"kubernetes kind", with(func(c *IssuerConfig) { c.Kind = KindKubernetes; c.UsernameClaim = "sub" }), ""},
		{"skew at the maximum", with(func(c *IssuerConfig) { c.ClockSkew = MaxClockSkew }), ""},
		{"no issuers", Config{}, "no issuers"},
		{"negative cache size", Config{Issuers: []IssuerConfig{ok}, CacheSize: -1}, "CacheSize"},
		{"no URL", with(func(c *IssuerConfig) { c.URL = "" }), "URL is required"},
		{"http elsewhere", with(func(c *IssuerConfig) { c.URL = "http://dex.example.com" }), "loopback"},
		{"http on localhost by name", with(func(c *IssuerConfig) { c.URL = "http://localhost:5556" }), "loopback"},
		{"other scheme", with(func(c *IssuerConfig) { c.URL = "ftp://dex.example.com" }), "scheme"},
		{"URL with query", with(func(c *IssuerConfig) { c.URL = "https://dex.example.com/?a=b" }), "without user, query"},
		{"URL with user", with(func(c *IssuerConfig) { c.URL = "https://u:p@dex.example.com" }), "without user, query"},
		{"no audience", with(func(c *IssuerConfig) { c.Audience = "" }), "audience"},
		{"unknown kind", with(func(c *IssuerConfig) { c.Kind = "saml" }), "unknown kind"},
		{"kubernetes with a username claim", with(func(c *IssuerConfig) { c.Kind = KindKubernetes; c.UsernameClaim = "email" }), "always takes the username from sub"},
		{"kubernetes with a groups claim", with(func(c *IssuerConfig) { c.Kind = KindKubernetes; c.GroupsClaim = "groups" }), "GroupsClaim must be empty"},
		{"reserved username prefix", with(func(c *IssuerConfig) { c.UsernamePrefix = "system:" }), "reserved"},
		{"reserved groups prefix", with(func(c *IssuerConfig) { c.GroupsPrefix = "system:x:" }), "reserved"},
		{"empty required claim name", with(func(c *IssuerConfig) { c.RequiredClaims = map[string]string{"": "x"} }), "empty claim name"},
		{"negative skew", with(func(c *IssuerConfig) { c.ClockSkew = -time.Second }), "negative"},
		{"skew too large", with(func(c *IssuerConfig) { c.ClockSkew = MaxClockSkew + time.Second }), "above the maximum"},
		{"missing CA file", with(func(c *IssuerConfig) { c.CAFile = filepath.Join(dir, "missing.pem") }), "reading CAFile"},
		{"CA file without PEM", with(func(c *IssuerConfig) { c.CAFile = notPEM }), "no PEM certificate"},
		{"duplicate URL", Config{Issuers: []IssuerConfig{ok, ok}}, "configured twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: err = %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && a == nil:
				t.Fatal("New returned nil")
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	required := map[string]string{"tenant": "acme"}
	base := &http.Client{Timeout: 3 * time.Second}
	a, err := New(Config{
		Issuers:    []IssuerConfig{{URL: "https://dex.example.com", Audience: "kubegate", RequiredClaims: required}},
		HTTPClient: base,
	})
	if err != nil {
		t.Fatal(err)
	}
	required["tenant"] = "changed after New"
	is := a.issuers["https://dex.example.com"]
	got := is.cfg
	if got.Name != got.URL || got.Kind != KindOIDC || got.UsernameClaim != "sub" || got.ClockSkew != DefaultClockSkew {
		t.Errorf("defaults not applied: %+v", got)
	}
	if got.RequiredClaims["tenant"] != "acme" {
		t.Error("RequiredClaims shares the caller's map")
	}
	if a.cache.size != DefaultCacheSize {
		t.Errorf("cache size %d, want %d", a.cache.size, DefaultCacheSize)
	}
	if is.client == base || is.client.Timeout != 3*time.Second {
		t.Errorf("issuer client should be a copy of the base client keeping its timeout")
	}
}

func TestIssuerClientAppliesCA(t *testing.T) {
	ti := newTestIssuer(t, "ca")
	base := &http.Client{}
	c, err := issuerClient(base, ti.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if base.Transport != nil {
		t.Fatal("issuerClient modified the base client")
	}
	resp, err := c.Get(ti.url + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("client with the issuer's CA: %v", err)
	}
	resp.Body.Close()
	plain, err := issuerClient(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := plain.Get(ti.url + "/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Fatal("client with the system roots trusted the test CA")
	}
	if _, err := issuerClient(&http.Client{Transport: roundTripperFunc(nil)}, ti.caFile); err == nil ||
		!strings.Contains(err.Error(), "*http.Transport") {
		t.Fatalf("custom transport with a CA file: err = %v", err)
	}
}
