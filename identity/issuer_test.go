package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeClock is the test clock: it moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Unix(1893456000, 0)} // 2030-01-01T00:00:00Z
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testIssuer is an OIDC issuer over real TLS on loopback: a discovery
// document and a key set, with an RSA and an ECDSA signing key. It counts
// fetches and can be taken down.
type testIssuer struct {
	srv    *httptest.Server
	url    string
	caFile string
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	rsaKID string
	ecKID  string

	down          atomic.Bool // discovery and key set answer 503
	keysDown      atomic.Bool // the key set answers 503
	discoveryHits atomic.Int64
	keysHits      atomic.Int64

	mu        sync.Mutex
	published []jose.JSONWebKey
	algs      []string // id_token_signing_alg_values_supported
	held      *hold    // while set, requests wait for its release
}

// hold makes the issuer's handlers wait until released.
type hold struct {
	entered  chan struct{} // closed when a request starts waiting
	once     sync.Once
	release  chan struct{}
	released sync.Once
}

func newTestIssuer(t testing.TB, name string) *testIssuer {
	t.Helper()
	ti := &testIssuer{
		rsa:    newRSAKey(t),
		ec:     newECKey(t),
		rsaKID: name + "-rsa",
		ecKID:  name + "-ec",
		algs:   []string{"RS256", "PS256", "ES256", "HS256", "none"},
	}
	ti.published = []jose.JSONWebKey{
		{Key: &ti.rsa.PublicKey, KeyID: ti.rsaKID, Use: "sig"},
		{Key: &ti.ec.PublicKey, KeyID: ti.ecKID, Use: "sig", Algorithm: string(jose.ES256)},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discoveryHits.Add(1)
		if ti.unavailable(w, r, false) {
			return
		}
		ti.mu.Lock()
		algs := ti.algs
		ti.mu.Unlock()
		writeJSON(w, map[string]any{
			"issuer":                                ti.url,
			"jwks_uri":                              ti.url + "/keys",
			"authorization_endpoint":                ti.url + "/auth",
			"token_endpoint":                        ti.url + "/token",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": algs,
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		ti.keysHits.Add(1)
		if ti.unavailable(w, r, true) {
			return
		}
		ti.mu.Lock()
		set := jose.JSONWebKeySet{Keys: ti.published}
		ti.mu.Unlock()
		writeJSON(w, set)
	})
	ti.srv = httptest.NewUnstartedServer(mux)
	ti.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	ti.srv.StartTLS()
	t.Cleanup(ti.srv.Close)
	ti.url = ti.srv.URL
	ti.caFile = filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ti.srv.Certificate().Raw})
	if err := os.WriteFile(ti.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ti
}

// hold makes requests wait until release is called; entered is closed
// when the first one starts waiting. release, which may be called more than
// once, must be called before the server closes.
func (ti *testIssuer) hold() (entered <-chan struct{}, release func()) {
	h := &hold{entered: make(chan struct{}), release: make(chan struct{})}
	ti.mu.Lock()
	ti.held = h
	ti.mu.Unlock()
	return h.entered, func() {
		ti.mu.Lock()
		ti.held = nil
		ti.mu.Unlock()
		h.released.Do(func() { close(h.release) })
	}
}

// unavailable answers 503 if the issuer (or, for keys, its key set) is
// down, after waiting while a test holds the issuer.
func (ti *testIssuer) unavailable(w http.ResponseWriter, r *http.Request, keys bool) bool {
	ti.mu.Lock()
	h := ti.held
	ti.mu.Unlock()
	if h != nil {
		h.once.Do(func() { close(h.entered) })
		select {
		case <-h.release:
		case <-r.Context().Done():
			return true
		}
	}
	if ti.down.Load() || (keys && ti.keysDown.Load()) {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	return false
}

// advertise sets the algorithms the discovery document lists.
func (ti *testIssuer) advertise(algs ...string) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.algs = algs
}

func (ti *testIssuer) publish(k jose.JSONWebKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.published = append(slices.Clone(ti.published), k)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// config returns an IssuerConfig for this issuer trusting its CA.
func (ti *testIssuer) config(kind string) IssuerConfig {
	return IssuerConfig{Name: "test-" + kind, URL: ti.url, Audience: "kubegate", CAFile: ti.caFile, Kind: kind}
}

// claims returns an ID token's claims issued at now, valid for ten minutes,
// with overrides applied (omit deletes a claim).
func (ti *testIssuer) claims(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":            ti.url,
		"aud":            "kubegate",
		"sub":            "user-canary-7f3a",
		"email":          "alice@example.com",
		"email_verified": true,
		"groups":         []string{"agents", "admins"},
		"tenant":         "acme",
		"iat":            now.Unix(),
		"exp":            now.Add(10 * time.Minute).Unix(),
	}
	for k, v := range overrides {
		if v == omit {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// omit, as an override, deletes a claim.
var omit = &struct{ omit bool }{}

// saClaims returns the claims of a pod-bound ServiceAccount token as
// kube-apiserver issues them.
func (ti *testIssuer) saClaims(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss": ti.url,
		"sub": "system:serviceaccount:dev:default",
		"aud": []string{"kubegate"},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
		"jti": "3b0f3a4e-jti",
		"kubernetes.io": map[string]any{
			"namespace":      "dev",
			"serviceaccount": map[string]any{"name": "default", "uid": "sa-uid-1"},
			"pod":            map[string]any{"name": "web-0", "uid": "pod-uid-1"},
			"node":           map[string]any{"name": "node-a", "uid": "node-uid-1"},
		},
	}
	for k, v := range overrides {
		if v == omit {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with the issuer's key for alg.
func (ti *testIssuer) sign(t testing.TB, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	if alg == jose.ES256 {
		return signWith(t, ti.ec, ti.ecKID, alg, claims)
	}
	return signWith(t, ti.rsa, ti.rsaKID, alg, claims)
}

func signWith(t testing.TB, key crypto.Signer, kid string, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawJWT assembles a compact JWT from a header and claims, with sig as the
// signature part (for alg none, HS256 and tampering).
func rawJWT(t testing.TB, header, claims map[string]any, sig func(signingInput string) string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := b64(h) + "." + b64(p)
	return in + "." + sig(in)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// hs256WithPublicKey signs like the classic key-confusion attack: HMAC with
// the issuer's RSA public key (PEM) as the secret.
func (ti *testIssuer) hs256WithPublicKey(t testing.TB, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&ti.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return rawJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": ti.rsaKID}, claims, func(in string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return b64(m.Sum(nil))
	})
}

// replacePayload swaps a signed token's payload for other claims, keeping
// its header and signature.
func replacePayload(t testing.TB, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + b64(p) + "." + parts[2]
}

// flipSignature changes one byte of a token's signature.
func flipSignature(token string) string {
	i := strings.LastIndexByte(token, '.') + 5
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// bearer returns a request to the gateway carrying token.
func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://gateway.test/api/v1/namespaces/dev/pods", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
