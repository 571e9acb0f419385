package console

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kubegate/kubegate/gateway"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Prefix is where the console lives on the gateway's listener.
const Prefix = "/ui/"

//go:embed ui
var uiFS embed.FS

// LiveSessions lists and kills the live exec, attach and port-forward
// sessions of every node of the cluster.
type LiveSessions interface {
	// List returns the live sessions, oldest first, and the nodes that
	// did not answer.
	List(ctx context.Context) ([]gateway.LiveSession, []string)
	// Kill ends a session on whichever node carries it, and reports
	// whether one was found.
	Kill(ctx context.Context, id, reason string) (bool, error)
}

// Config configures a Console. It is validated once by New and not changed
// afterwards.
type Config struct {
	// Issuer is the OIDC issuer URL people sign in with. Required.
	Issuer string
	// ClientID is the OAuth2 client the console signs in as; its ID
	// tokens must be ones the gateway's Authenticator accepts (their
	// audience is the issuer's configured audience). Required.
	ClientID string
	// ClientSecret is ClientID's secret. Empty means a public client,
	// protected by PKCE alone.
	ClientSecret string
	// IssuerClient makes the calls to the issuer (discovery, keys, the
	// code exchange). Nil means http.DefaultClient.
	IssuerClient *http.Client
	// BaseURL is the console's external origin, "https://host:port"; the
	// redirect URL registered with the issuer is BaseURL + "/ui/callback".
	// Required, and https: the session cookie is Secure.
	BaseURL string
	// Authenticator maps a verified ID token to the principal, as it does
	// for kubectl's bearer tokens. Required.
	Authenticator gateway.Authenticator
	// API is the gateway. Decisions are made by calling its kubegate API
	// with the signed-in user's ID token, so they are authorized, audited
	// and notified as any other. Required.
	API http.Handler
	// Approvals is the replicated approval state the approvals page shows
	// and watches. Nil shows no access requests.
	Approvals gateway.Approvals
	// ApproverGroups may sign in as approvers: they see and decide on
	// access requests and may kill live sessions. Empty means nobody.
	ApproverGroups []string
	// AuditorGroups may sign in as auditors: they see everything the
	// console shows, and change nothing. Empty means nobody.
	AuditorGroups []string
	// Sessions lists and kills live sessions across the cluster. Nil
	// shows none.
	Sessions LiveSessions
	// NodeID names this node among the live sessions' nodes: only its
	// own sessions can be watched here, from their recordings on its
	// disk. Empty means "kubegate", as the gateway's default.
	NodeID string
	// RecordingsDir holds this node's session recordings. Empty shows
	// none.
	RecordingsDir string
	// AuditFile is this node's audit file, for the events beside a
	// recording and for API timelines. Empty shows none.
	AuditFile string
	// SessionTTL bounds a console session; it never outlives the ID
	// token it was made from. Zero means 8h.
	SessionTTL time.Duration
	// Log receives sign-ins and refusals (never tokens). Nil means
	// slog.Default().
	Log *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Console serves the web console; mount it at Prefix.
type Console struct {
	cfg    Config
	origin string // scheme://host[:port] of BaseURL
	mux    *http.ServeMux
	static http.Handler

	oidc     *oidcClient
	sessions *sessionStore
	logins   *loginStore

	closeOnce sync.Once
	closed    chan struct{} // closed by Shutdown: event streams end
}

// New validates cfg and builds the console.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("console: issuer URL is required")
	case cfg.ClientID == "":
		return nil, errors.New("console: client ID is required")
	case cfg.Authenticator == nil:
		return nil, errors.New("console: authenticator is required")
	case cfg.API == nil:
		return nil, errors.New("console: the gateway API handler is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("console: base URL %q must be https://host[:port]", cfg.BaseURL)
	}
	if cfg.IssuerClient == nil {
		cfg.IssuerClient = http.DefaultClient
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "kubegate"
	}
	sub, err := fs.Sub(uiFS, "ui")
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg:      cfg,
		origin:   u.Scheme + "://" + u.Host,
		static:   http.StripPrefix(strings.TrimSuffix(Prefix, "/"), noListing(http.FileServerFS(sub))),
		sessions: newSessionStore(cfg.Now),
		logins:   newLoginStore(cfg.Now),
		closed:   make(chan struct{}),
	}
	c.oidc = &oidcClient{issuer: cfg.Issuer, clientID: cfg.ClientID, secret: cfg.ClientSecret,
		redirect: c.origin + Prefix + "callback", client: cfg.IssuerClient}
	c.mux = c.routes()
	return c, nil
}

// URL is the console's address, as people open it.
func (c *Console) URL() string { return c.origin + Prefix }

// Shutdown ends the event streams, so that the listener's graceful
// shutdown does not wait for them.
func (c *Console) Shutdown() { c.closeOnce.Do(func() { close(c.closed) }) }

// routes maps the console's pages and API. Pages need a session and
// redirect to the sign-in otherwise; the API answers 401.
func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	// Sign-in.
	mux.HandleFunc("GET /ui/login", c.login)
	mux.HandleFunc("GET /ui/callback", c.callback)
	mux.HandleFunc("POST /ui/logout", c.withSession(c.logout))
	// Pages: one document; app.js shows the page the path names.
	for _, p := range []string{"/ui/{$}", "/ui/approvals", "/ui/sessions", "/ui/sessions/{id}", "/ui/live/{id}", "/ui/timeline"} {
		mux.HandleFunc("GET "+p, c.page)
	}
	// Static assets: no secrets, no session needed.
	for _, p := range []string{"/ui/app.js", "/ui/style.css", "/ui/favicon.svg", "/ui/vendor/"} {
		mux.Handle("GET "+p, c.static)
	}
	// API.
	mux.HandleFunc("GET /ui/api/me", c.withSession(c.me))
	mux.HandleFunc("GET /ui/api/requests", c.withSession(c.listRequests))
	mux.HandleFunc("GET /ui/api/events", c.withSession(c.events))
	mux.HandleFunc("POST /ui/api/requests/{id}/{verb}", c.withSession(c.requireApprover(c.decide)))
	mux.HandleFunc("GET /ui/api/sessions", c.withSession(c.listSessions))
	mux.HandleFunc("POST /ui/api/sessions/{id}/kill", c.withSession(c.requireApprover(c.killSession)))
	mux.HandleFunc("GET /ui/api/recordings/{id}", c.withSession(c.recordingDetail))
	mux.HandleFunc("GET /ui/api/recordings/{id}/cast", c.withSession(c.recordingCast))
	mux.HandleFunc("GET /ui/api/live/{id}", c.withSession(c.followLive))
	mux.HandleFunc("GET /ui/api/timeline", c.withSession(c.timeline))
	mux.HandleFunc("/ui/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no console API call "+r.Method+" "+r.URL.Path)
	})
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no console page "+r.URL.Path)
	})
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	return mux
}

// ServeHTTP serves the console, with headers that keep its pages out of
// frames and caches and its scripts to its own origin.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// asciinema-player compiles its terminal emulator from WebAssembly and
	// sets element styles; nothing else is allowed beyond the origin.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "+
		"img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	if !strings.HasPrefix(r.URL.Path, "/ui/vendor/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// page serves the single document every page path shows.
func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.session(r); !ok {
		http.Redirect(w, r, Prefix+"login?return="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	b, err := uiFS.ReadFile("ui/index.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "console page missing from the binary")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

// noListing serves files only, never a directory's listing.
func noListing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no console file "+r.URL.Path)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// writeError replies with a Kubernetes Status, as the gateway does.
func writeError(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: "kubegate console: " + msg, Reason: reason, Code: int32(code),
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// randomID returns n random bytes as hex.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
