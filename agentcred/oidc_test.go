package agentcred

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubegate/kubegate/agentcred/oidctest"
)

const (
	testUser     = "agent@kubegate.test"
	testPassword = "pw-Tr0ub4dor&3 not for logs"
	testSecret   = "client-secret/also+not=for logs"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func newProvider(t *testing.T, clock *fakeClock) *oidctest.Provider {
	return oidctest.New(t, oidctest.Options{
		ClientSecret: testSecret,
		Users:        map[string]string{testUser: testPassword},
		Now:          clock.Now,
	})
}

// passwordConfig is a config that logs in to p as testUser.
func passwordConfig(p *oidctest.Provider, clock *fakeClock, cacheDir string) OIDCPasswordConfig {
	return OIDCPasswordConfig{
		Issuer: p.Issuer, ClientID: "kubegate", ClientSecret: testSecret,
		Username: testUser, Password: testPassword,
		HTTPClient: p.Client(), CacheDir: cacheDir, Now: clock.Now,
	}
}

func mustToken(t *testing.T, cfg OIDCPasswordConfig) (string, time.Time) {
	t.Helper()
	src, err := NewOIDCPassword(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok, exp
}

func TestOIDCPasswordFetchesCachesAndRefreshes(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t, clock)
	cacheDir := filepath.Join(t.TempDir(), "tokens")
	cfg := passwordConfig(p, clock, cacheDir)
	start := clock.Now()

	tok, exp := mustToken(t, cfg)
	if issued := p.Issued(); len(issued) != 1 || tok != issued[0] {
		t.Fatalf("token is not the one the issuer issued (issued %d)", len(issued))
	}
	if want := start.Add(time.Hour); !exp.Equal(want) {
		t.Errorf("expiry = %v, want %v", exp, want)
	}

	// Each `kubegate token` is a new process: a new source, the same cache.
	steps := []struct {
		name       string
		at         time.Time
		wantGrants int
		wantNew    bool
	}{
		{"right after", start.Add(time.Second), 1, false},
		{"31s before expiry", exp.Add(-31 * time.Second), 1, false},
		{"30s before expiry", exp.Add(-RefreshMargin), 2, true},
		{"after the refresh", exp, 2, false},
	}
	for _, step := range steps {
		clock.Set(step.at)
		got, _ := mustToken(t, cfg)
		if g := p.Grants(); g != step.wantGrants {
			t.Errorf("%s: %d grants, want %d", step.name, g, step.wantGrants)
		}
		if isNew := got != tok; isNew != step.wantNew {
			t.Errorf("%s: new token = %v, want %v", step.name, isNew, step.wantNew)
		}
		tok = got
	}

	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("cache holds %d files, want 1", len(entries))
	}
	info, err := entries[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode = %v, want 0600", info.Mode().Perm())
	}
	if strings.Contains(info.Name(), "agent") {
		t.Errorf("cache file name %q shows the username", info.Name())
	}
	b, err := os.ReadFile(filepath.Join(cacheDir, info.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != tok || strings.Contains(string(b), testPassword) {
		t.Errorf("cache file does not hold just the current token")
	}
}

func TestOIDCPasswordCacheIsPerLogin(t *testing.T) {
	clock := newFakeClock()
	p := oidctest.New(t, oidctest.Options{
		ClientSecret: testSecret,
		Users:        map[string]string{testUser: testPassword, "other@kubegate.test": "other-pw"},
		Now:          clock.Now,
	})
	cacheDir := t.TempDir()
	cfg := passwordConfig(p, clock, cacheDir)
	first, _ := mustToken(t, cfg)
	cfg.Username, cfg.Password = "other@kubegate.test", "other-pw"
	other, _ := mustToken(t, cfg)
	cfg.Scopes = []string{"openid"}
	narrower, _ := mustToken(t, cfg)
	if first == other || other == narrower || p.Grants() != 3 {
		t.Errorf("%d grants for 3 different logins; a cached token was shared", p.Grants())
	}
}

func TestOIDCPasswordReplacesBrokenCache(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t, clock)
	cacheDir := t.TempDir()
	cfg := passwordConfig(p, clock, cacheDir)
	mustToken(t, cfg)
	files, _ := filepath.Glob(filepath.Join(cacheDir, "*.token"))
	if len(files) != 1 {
		t.Fatalf("cache files = %v", files)
	}
	if err := os.WriteFile(files[0], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, _ := mustToken(t, cfg)
	if p.Grants() != 2 {
		t.Errorf("%d grants, want 2: a broken cache entry must mean a new login", p.Grants())
	}
	if b, _ := os.ReadFile(files[0]); string(b) != tok {
		t.Error("the broken cache entry was not replaced")
	}
}

func TestOIDCPasswordWithoutCacheLogsInEveryTime(t *testing.T) {
	clock := newFakeClock()
	p := newProvider(t, clock)
	cfg := passwordConfig(p, clock, "")
	mustToken(t, cfg)
	mustToken(t, cfg)
	if p.Grants() != 2 {
		t.Errorf("%d grants, want 2", p.Grants())
	}
}

func TestOIDCPasswordPublicClientAndScopes(t *testing.T) {
	clock := newFakeClock()
	p := oidctest.New(t, oidctest.Options{Users: map[string]string{testUser: testPassword}, Now: clock.Now})
	var mu sync.Mutex
	var form url.Values
	p.OverrideTokenResponse(func(w http.ResponseWriter, f url.Values) bool {
		mu.Lock()
		defer mu.Unlock()
		form = f
		return false
	})
	cfg := passwordConfig(p, clock, "")
	cfg.ClientSecret = ""
	cfg.Scopes = []string{"groups"}
	mustToken(t, cfg)
	mu.Lock()
	defer mu.Unlock()
	if got := form.Get("client_id"); got != "kubegate" {
		t.Errorf("client_id = %q, want kubegate in the form of a public client", got)
	}
	if got := form.Get("scope"); got != "openid groups" {
		t.Errorf("scope = %q, want openid added: %q", got, "openid groups")
	}
}

func TestOIDCPasswordErrors(t *testing.T) {
	echo := func(status int, body string) func(http.ResponseWriter, url.Values) bool {
		return func(w http.ResponseWriter, f url.Values) bool {
			w.WriteHeader(status)
			w.Write([]byte(body))
			return true
		}
	}
	tests := []struct {
		name     string
		edit     func(*OIDCPasswordConfig)
		respond  func(http.ResponseWriter, url.Values) bool
		wantMsg  string
		wantCode int // of a *GrantError; 0 for another error
	}{
		{
			name:     "wrong password",
			edit:     func(c *OIDCPasswordConfig) { c.Password = "wrong-" + testPassword },
			wantMsg:  ": 401 Unauthorized: invalid_request: Invalid username or password",
			wantCode: http.StatusUnauthorized,
		},
		{
			name:     "wrong client secret",
			edit:     func(c *OIDCPasswordConfig) { c.ClientSecret = "wrong-" + testSecret },
			wantMsg:  ": 401 Unauthorized: invalid_client",
			wantCode: http.StatusUnauthorized,
		},
		{
			name:     "issuer echoes the secrets in an OAuth2 error",
			respond:  echo(http.StatusBadRequest, `{"error":"invalid_grant","error_description":"bad password `+testPassword+` for client secret `+url.QueryEscape(testSecret)+`"}`),
			wantMsg:  ": 400 Bad Request: invalid_grant: bad password [redacted] for client secret [redacted]",
			wantCode: http.StatusBadRequest,
		},
		{
			name:     "issuer echoes the form as text",
			respond:  echo(http.StatusInternalServerError, "cannot handle password="+url.QueryEscape(testPassword)),
			wantMsg:  ": 500 Internal Server Error: cannot handle password=[redacted]",
			wantCode: http.StatusInternalServerError,
		},
		{
			name:    "no id_token",
			respond: echo(http.StatusOK, `{"access_token":"x","token_type":"bearer"}`),
			wantMsg: "has no id_token",
		},
		{
			name:    "id_token not a JWT",
			respond: echo(http.StatusOK, `{"id_token":"opaque"}`),
			wantMsg: "id_token: token is not a JWT",
		},
		{
			name:    "issuer not trusted",
			edit:    func(c *OIDCPasswordConfig) { c.HTTPClient = nil },
			wantMsg: "oidc discovery at https://",
		},
		{
			name:    "issuer URL differs from the discovered one",
			edit:    func(c *OIDCPasswordConfig) { c.Issuer += "/" },
			wantMsg: "oidc discovery at https://",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := newProvider(t, clock)
			if tc.respond != nil {
				p.OverrideTokenResponse(tc.respond)
			}
			cfg := passwordConfig(p, clock, t.TempDir())
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			src, err := NewOIDCPassword(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = src.Token(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", msg, tc.wantMsg)
			}
			var ge *GrantError
			if errors.As(err, &ge) != (tc.wantCode != 0) || (ge != nil && ge.StatusCode != tc.wantCode) {
				t.Errorf("err = %#v, want a *GrantError with status %d: %v", err, tc.wantCode, tc.wantCode != 0)
			}
			if tc.wantCode != 0 && !strings.HasPrefix(msg, "oidc password grant at "+p.Issuer+": ") {
				t.Errorf("err = %q, want it to name the issuer", msg)
			}
			for _, secret := range []string{testPassword, testSecret, url.QueryEscape(testPassword), url.QueryEscape(testSecret)} {
				if strings.Contains(msg, secret) {
					t.Errorf("err = %q contains a secret", msg)
				}
			}
		})
	}
}

func TestNewOIDCPasswordValidates(t *testing.T) {
	valid := OIDCPasswordConfig{Issuer: "https://dex.example", ClientID: "kubegate", Username: "u", Password: "p"}
	tests := []struct {
		name string
		edit func(*OIDCPasswordConfig)
		want string
	}{
		{"valid", func(*OIDCPasswordConfig) {}, ""},
		{"no issuer", func(c *OIDCPasswordConfig) { c.Issuer = "" }, "not an http(s) URL"},
		{"issuer not a URL", func(c *OIDCPasswordConfig) { c.Issuer = "dex.example" }, "not an http(s) URL"},
		{"no client", func(c *OIDCPasswordConfig) { c.ClientID = "" }, "no client ID"},
		{"no username", func(c *OIDCPasswordConfig) { c.Username = "" }, "no username"},
		{"no password", func(c *OIDCPasswordConfig) { c.Password = "" }, "no password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.edit(&cfg)
			_, err := NewOIDCPassword(cfg)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
