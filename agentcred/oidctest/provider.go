package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Options configure a Provider.
type Options struct {
	// ClientID is the one client. Empty means "kubegate".
	ClientID string
	// ClientSecret is the client's secret. Empty means a public client,
	// which sends client_id in the form.
	ClientSecret string
	// Users maps usernames to passwords.
	Users map[string]string
	// TTL is the ID tokens' lifetime. Zero means an hour.
	TTL time.Duration
	// Now is the clock for iat and exp. Nil means time.Now.
	Now func() time.Time
}

// Provider is a running issuer. Its server is closed when the test ends.
type Provider struct {
	// Issuer is the issuer URL (the server's https URL).
	Issuer string
	// CAPEM is the server's certificate in PEM, to trust it.
	CAPEM []byte

	opts   Options
	srv    *httptest.Server
	key    *rsa.PrivateKey
	signer jose.Signer

	mu       sync.Mutex
	grants   int
	issued   []string
	response func(w http.ResponseWriter, form url.Values) bool
}

// keyID names the one signing key in the JWKS.
const keyID = "oidctest"

// New starts a Provider.
func New(t testing.TB, opts Options) *Provider {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "kubegate"
	}
	if opts.TTL == 0 {
		opts.TTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: keyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{opts: opts, key: key, signer: signer}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /keys", p.keys)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewUnstartedServer(mux)
	p.srv.Config.ErrorLog = log.New(testWriter{t}, "oidctest: ", 0)
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.Issuer = p.srv.URL
	p.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	return p
}

// Client returns an HTTP client that trusts the provider.
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// WriteCA writes CAPEM to a file in dir and returns its path.
func (p *Provider) WriteCA(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "oidc-ca.pem")
	if err := os.WriteFile(path, p.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Grants returns how many password grants the token endpoint has received,
// successful or not.
func (p *Provider) Grants() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grants
}

// Issued returns the ID tokens issued so far, oldest first.
func (p *Provider) Issued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

// OverrideTokenResponse makes the token endpoint call respond first; when
// it returns true it has written the reply. Tests use it for misbehaving
// issuers.
func (p *Provider) OverrideTokenResponse(respond func(w http.ResponseWriter, form url.Values) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.response = respond
}

// PublicKey is the key that signs ID tokens.
func (p *Provider) PublicKey() *rsa.PublicKey { return &p.key.PublicKey }

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.Issuer,
		"authorization_endpoint":                p.Issuer + "/auth",
		"token_endpoint":                        p.Issuer + "/token",
		"jwks_uri":                              p.Issuer + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"grant_types_supported":                 []string{"password"},
	})
}

func (p *Provider) keys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &p.key.PublicKey, KeyID: keyID, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

// token implements the password grant the way Dex does: client auth by
// HTTP Basic (form-encoded parts) or, for a public client, client_id in the
// form; 401 invalid_request for a wrong username or password.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	p.mu.Lock()
	p.grants++
	respond := p.response
	p.mu.Unlock()
	if respond != nil && respond(w, r.PostForm) {
		return
	}
	if !p.clientOK(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials.")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "password" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type "+gt)
		return
	}
	user := r.PostForm.Get("username")
	if want, ok := p.opts.Users[user]; !ok || want != r.PostForm.Get("password") {
		oauthError(w, http.StatusUnauthorized, "invalid_request", "Invalid username or password")
		return
	}
	resp := map[string]any{"access_token": "opaque-access-token", "token_type": "bearer", "expires_in": int(p.opts.TTL.Seconds())}
	if scopes := strings.Fields(r.PostForm.Get("scope")); slices.Contains(scopes, "openid") {
		now := p.opts.Now()
		claims := map[string]any{
			"iss": p.Issuer, "sub": user, "aud": p.opts.ClientID,
			"iat": now.Unix(), "exp": now.Add(p.opts.TTL).Unix(),
		}
		if slices.Contains(scopes, "email") {
			claims["email"], claims["email_verified"] = user, true
		}
		if slices.Contains(scopes, "groups") {
			claims["groups"] = []string{"agents"}
		}
		idToken, err := jwt.Signed(p.signer).Claims(claims).Serialize()
		if err != nil {
			oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		p.mu.Lock()
		p.issued = append(p.issued, idToken)
		p.mu.Unlock()
		resp["id_token"] = idToken
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) clientOK(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.opts.ClientID && secret == p.opts.ClientSecret
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// testWriter sends the server's log (TLS handshake failures) to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
