package console

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/kubegate/kubegate/identity"
)

// fakeIdP is an OIDC issuer with the authorization code flow and PKCE
// (S256 only). Its /auth signs in the user named by the test at once,
// as an IdP with a remembered login would.
type fakeIdP struct {
	t      *testing.T
	srv    *httptest.Server
	signer jose.Signer
	key    *rsa.PrivateKey

	mu     sync.Mutex
	user   string
	groups []string
	codes  map[string]codeGrant
	// nonce overrides the nonce put in ID tokens, when set.
	nonce string
	// redeemed counts code exchanges.
	redeemed int
}

type codeGrant struct {
	challenge, nonce, redirect string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeIdP{t: t, signer: signer, key: key, codes: map[string]codeGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /auth", p.auth)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeIdP) signIn(user string, groups ...string) {
	p.mu.Lock()
	p.user, p.groups = user, groups
	p.mu.Unlock()
}

func (p *fakeIdP) auth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != "console" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	code := randomID(8)
	p.mu.Lock()
	p.codes[code] = codeGrant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	p.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

func (p *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.redeemed++
	g, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	id, secret, _ := r.BasicAuth()
	switch {
	case !ok:
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		http.Error(w, `{"error":"invalid_grant","error_description":"PKCE verifier"}`, http.StatusBadRequest)
		return
	case id != "console" || secret != "s3cret":
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	nonce := g.nonce
	if p.nonce != "" {
		nonce = p.nonce
	}
	now := time.Now()
	tok, err := jwt.Signed(p.signer).Claims(map[string]any{
		"iss": p.srv.URL, "sub": p.user, "aud": "console", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"nonce": nonce, "email": p.user, "groups": p.groups,
	}).Serialize()
	if err != nil {
		p.t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "a", "token_type": "bearer", "expires_in": 3600, "id_token": tok})
}

// consoleHarness is a Console behind TLS with a fake IdP, the real
// identity.Authenticator, and a fake gateway API that records calls.
type consoleHarness struct {
	idp     *fakeIdP
	c       *Console
	srv     *httptest.Server
	apiMu   sync.Mutex
	apiSeen []string // "METHOD path user"
}

func newHarness(t *testing.T, cfg Config) *consoleHarness {
	h := &consoleHarness{idp: newFakeIdP(t)}
	authn, err := identity.New(identity.Config{
		Issuers:    []identity.IssuerConfig{{URL: h.idp.srv.URL, Audience: "console", UsernameClaim: "email", GroupsClaim: "groups", GroupsPrefix: "idp:"}},
		HTTPClient: h.idp.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewUnstartedServer(nil)
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	cfg.Issuer, cfg.ClientID, cfg.ClientSecret = h.idp.srv.URL, "console", "s3cret"
	cfg.IssuerClient, cfg.BaseURL, cfg.Authenticator = h.idp.srv.Client(), h.srv.URL, authn
	cfg.API = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authn.Authenticate(r.Context(), r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		h.apiMu.Lock()
		h.apiSeen = append(h.apiSeen, r.Method+" "+r.URL.Path+" "+p.User)
		h.apiMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"state":"approved"}`)
	})
	if cfg.ApproverGroups == nil {
		cfg.ApproverGroups = []string{"idp:approvers"}
	}
	if cfg.AuditorGroups == nil {
		cfg.AuditorGroups = []string{"idp:auditors"}
	}
	h.c, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Config.Handler = h.c
	t.Cleanup(h.c.Shutdown)
	return h
}

// browser is an HTTP client with a cookie jar that trusts both servers
// and follows redirects.
func (h *consoleHarness) browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := h.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs.AddCert(h.idp.srv.Certificate())
	return &http.Client{Jar: jar, Transport: tr}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn runs the whole sign-in from the console's /ui/login.
func (h *consoleHarness) signIn(t *testing.T, c *http.Client, user string, groups ...string) (*http.Response, string) {
	t.Helper()
	h.idp.signIn(user, groups...)
	return get(t, c, h.srv.URL+"/ui/login?return=/ui/sessions")
}

func (h *consoleHarness) me(t *testing.T, c *http.Client) meView {
	t.Helper()
	resp, body := get(t, c, h.srv.URL+"/ui/api/me")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/api/me: %s: %s", resp.Status, body)
	}
	var m meView
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSignInWithPKCEGivesASecureSession(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.browser(t)
	resp, body := h.signIn(t, c, "ann@example.com", "approvers")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/sessions" {
		t.Fatalf("sign-in ended at %s with %s: %s", resp.Request.URL, resp.Status, body)
	}
	m := h.me(t, c)
	if m.User != "ann@example.com" || m.Role != RoleApprover || m.CSRF == "" {
		t.Fatalf("me = %+v, want ann as approver with a CSRF token", m)
	}
	// The cookie: Secure, HttpOnly, SameSite, __Host-.
	cookies := c.Jar.Cookies(mustURL(t, h.srv.URL))
	if len(cookies) != 1 || cookies[0].Name != sessionCookie {
		t.Fatalf("cookies after sign-in: %v, want only %s", cookies, sessionCookie)
	}
	var setCookie string
	h.idp.signIn("ann@example.com", "approvers")
	noFollow := &http.Client{Jar: c.Jar, Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r1, _ := get(t, noFollow, h.srv.URL+"/ui/login")
	r2, _ := get(t, noFollow, r1.Header.Get("Location"))
	r3, _ := get(t, noFollow, r2.Header.Get("Location"))
	for _, sc := range r3.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, sessionCookie+"=") && !strings.HasPrefix(sc, sessionCookie+"=;") {
			setCookie = sc
		}
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("session cookie %q lacks %s", setCookie, attr)
		}
	}
	// The authorization request carried an S256 challenge (the fake IdP
	// refuses others) and the exchange its verifier.
	if h.idp.redeemed != 2 {
		t.Errorf("IdP redeemed %d codes, want 2", h.idp.redeemed)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSignInRefusals(t *testing.T) {
	t.Run("neither approver nor auditor", func(t *testing.T) {
		h := newHarness(t, Config{})
		c := h.browser(t)
		resp, body := h.signIn(t, c, "agent@example.com", "agents")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Access refused") || !strings.Contains(body, "agent@example.com") {
			t.Fatalf("got %s: %s", resp.Status, body)
		}
		if r, _ := get(t, c, h.srv.URL+"/ui/api/me"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("refused user's API call: %s, want 401", r.Status)
		}
	})
	t.Run("auditor", func(t *testing.T) {
		h := newHarness(t, Config{})
		c := h.browser(t)
		h.signIn(t, c, "aud@example.com", "auditors")
		if m := h.me(t, c); m.Role != RoleAuditor {
			t.Fatalf("role %s, want auditor", m.Role)
		}
	})
	t.Run("state mismatch", func(t *testing.T) {
		h := newHarness(t, Config{})
		c := h.browser(t)
		c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			if strings.HasSuffix(r.URL.Path, "/ui/callback") {
				q := r.URL.Query()
				q.Set("state", "forged")
				r.URL.RawQuery = q.Encode()
			}
			return nil
		}
		resp, body := h.signIn(t, c, "ann@example.com", "approvers")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "state does not match") {
			t.Fatalf("got %s: %s", resp.Status, body)
		}
		if h.idp.redeemed != 0 {
			t.Errorf("a code was redeemed despite the wrong state")
		}
	})
	t.Run("callback without the login cookie", func(t *testing.T) {
		h := newHarness(t, Config{})
		c := h.browser(t)
		c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			if strings.HasSuffix(r.URL.Path, "/ui/callback") {
				c.Jar, _ = cookiejar.New(nil) // another browser finishes the sign-in
				r.Header.Del("Cookie")
			}
			return nil
		}
		resp, body := h.signIn(t, c, "ann@example.com", "approvers")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Sign-in expired") {
			t.Fatalf("got %s: %s", resp.Status, body)
		}
	})
	t.Run("wrong nonce", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.idp.nonce = "replayed"
		resp, body := h.signIn(t, h.browser(t), "ann@example.com", "approvers")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "identity token was not accepted") {
			t.Fatalf("got %s: %s", resp.Status, body)
		}
	})
}

func TestCSRFAndRoles(t *testing.T) {
	h := newHarness(t, Config{})
	approver := h.browser(t)
	h.signIn(t, approver, "ann@example.com", "approvers")
	m := h.me(t, approver)
	post := func(c *http.Client, path, csrf, origin string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, h.srv.URL+path, strings.NewReader(`{"reason":"ok"}`))
		if csrf != "" {
			req.Header.Set(csrfHeader, csrf)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, csrf, origin string
		want               int
	}{
		{"no token", "", "", http.StatusForbidden},
		{"wrong token", strings.Repeat("0", len(m.CSRF)), "", http.StatusForbidden},
		{"foreign origin", m.CSRF, "https://evil.example", http.StatusForbidden},
		{"token and own origin", m.CSRF, h.srv.URL, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(approver, "/ui/api/requests/r1/approve", tc.csrf, tc.origin)
			if code != tc.want {
				t.Fatalf("POST approve: %d %s, want %d", code, body, tc.want)
			}
		})
	}
	// Only the accepted call reached the gateway, as ann, with her token.
	if got := strings.Join(h.apiSeen, ";"); got != "POST /kubegate/v1/requests/r1/approve ann@example.com" {
		t.Errorf("gateway API saw %q", got)
	}
	// An auditor changes nothing, even with a good token.
	auditor := h.browser(t)
	h.signIn(t, auditor, "aud@example.com", "auditors")
	am := h.me(t, auditor)
	if code, body := post(auditor, "/ui/api/requests/r1/approve", am.CSRF, ""); code != http.StatusForbidden || !strings.Contains(body, "auditor") {
		t.Errorf("auditor's approve: %d %s, want 403", code, body)
	}
	if code, _ := post(auditor, "/ui/api/sessions/s1/kill", am.CSRF, ""); code != http.StatusForbidden {
		t.Errorf("auditor's kill: %d, want 403", code)
	}
	// Signing out ends the session.
	if code, _ := post(approver, "/ui/logout", m.CSRF, ""); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if r, _ := get(t, approver, h.srv.URL+"/ui/api/me"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %s, want 401", r.Status)
	}
}

func TestPagesNeedASession(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.browser(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := get(t, c, h.srv.URL+"/ui/approvals")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/login?return="+url.QueryEscape("/ui/approvals") {
		t.Fatalf("page without a session: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/ui/api/requests", "/ui/api/events", "/ui/api/sessions", "/ui/api/timeline"} {
		if r, _ := get(t, c, h.srv.URL+p); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a session: %s, want 401", p, r.Status)
		}
	}
	if r, _ := get(t, c, h.srv.URL+"/ui/app.js"); r.StatusCode != http.StatusOK || r.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("app.js: %s, CSP %q", r.Status, r.Header.Get("Content-Security-Policy"))
	}
	if r, body := get(t, c, h.srv.URL+"/ui/vendor/"); r.StatusCode != http.StatusNotFound || strings.Contains(body, "href") {
		t.Errorf("a directory listing: %s %s", r.Status, body)
	}
}

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/sessions?user=a": "/ui/sessions?user=a",
		"//evil.example/ui/":  "/ui/",
		"https://evil/ui/":    "/ui/",
		"/ui/login":           "/ui/",
		"/ui/api/me":          "/ui/",
		"/other":              "/ui/",
		"/ui/\\evil":          "/ui/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

func principal(user string, groups ...string) *identity.Principal {
	return &identity.Principal{User: user, Groups: groups}
}
