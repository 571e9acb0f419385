package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/kubegate/kubegate/identity"
	"golang.org/x/oauth2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cookie names. The __Host- prefix makes the browser insist on Secure,
// Path=/ and no Domain, so no other host can set or read them.
const (
	sessionCookie = "__Host-kubegate-console"
	loginCookie   = "__Host-kubegate-login"
	// csrfHeader carries the session's CSRF token on every state change.
	csrfHeader = "X-Kubegate-Csrf"
)

// Limits of the in-memory stores: beyond them the oldest entries go.
const (
	maxSessions = 10000
	maxLogins   = 10000
	loginTTL    = 10 * time.Minute
)

// Role is what a signed-in person may do.
type Role string

// The roles, from OIDC groups.
const (
	// RoleApprover sees everything and decides on access requests and
	// kills sessions.
	RoleApprover Role = "approver"
	// RoleAuditor sees everything and changes nothing.
	RoleAuditor Role = "auditor"
)

// errRefused is a sign-in by someone in neither role.
var errRefused = errors.New("not an approver or auditor")

// roleOf returns the role p's groups give: approver before auditor.
func (c *Console) roleOf(p *identity.Principal) (Role, error) {
	for _, g := range p.Groups {
		if slices.Contains(c.cfg.ApproverGroups, g) {
			return RoleApprover, nil
		}
	}
	for _, g := range p.Groups {
		if slices.Contains(c.cfg.AuditorGroups, g) {
			return RoleAuditor, nil
		}
	}
	return "", errRefused
}

// session is a signed-in person.
type session struct {
	id        string
	principal *identity.Principal
	role      Role
	// idToken authenticates the console's calls of the gateway API made
	// on the person's behalf. It never leaves the server.
	idToken string
	csrf    string
	expires time.Time
}

type sessionStore struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*session
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{now: now, m: map[string]*session{}}
}

func (s *sessionStore) add(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, o := range s.m {
		if !now.Before(o.expires) {
			delete(s.m, id)
		}
	}
	for len(s.m) >= maxSessions {
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.expires.Before(oldest.expires) {
				oldest = o
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[sess.id] = sess
}

func (s *sessionStore) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.m, id)
		return nil, false
	}
	return sess, true
}

func (s *sessionStore) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// pendingLogin is a sign-in sent to the issuer and not back yet.
type pendingLogin struct {
	state, nonce, verifier string
	returnTo               string
	expires                time.Time
}

type loginStore struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*pendingLogin
}

func newLoginStore(now func() time.Time) *loginStore {
	return &loginStore{now: now, m: map[string]*pendingLogin{}}
}

func (s *loginStore) add(id string, p *pendingLogin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, o := range s.m {
		if !now.Before(o.expires) {
			delete(s.m, k)
		}
	}
	if len(s.m) >= maxLogins {
		return // a flood of unfinished sign-ins; this one will fail as expired
	}
	s.m[id] = p
}

// take returns and forgets a pending sign-in: each is used once.
func (s *loginStore) take(id string) (*pendingLogin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[id]
	delete(s.m, id)
	if !ok || !s.now().Before(p.expires) {
		return nil, false
	}
	return p, true
}

// oidcClient talks to the issuer; its discovery document is fetched on
// first use, so a console starts while the issuer is down.
type oidcClient struct {
	issuer, clientID, secret, redirect string
	client                             *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.client)
}

func (o *oidcClient) discover(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		p, err := oidc.NewProvider(o.ctx(ctx), o.issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("discovering OIDC issuer %s: %w", o.issuer, err)
		}
		o.provider = p
	}
	return o.provider, &oauth2.Config{
		ClientID: o.clientID, ClientSecret: o.secret, RedirectURL: o.redirect,
		Endpoint: o.provider.Endpoint(),
		Scopes:   []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}, nil
}

// login sends the browser to the issuer with a fresh state, nonce and
// PKCE verifier, remembered under a random id in a short-lived cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	_, oc, err := c.oidc.discover(r.Context())
	if err != nil {
		c.cfg.Log.Warn("console sign-in", "err", err)
		c.authPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable", "The identity provider cannot be reached. Try again in a moment.", "")
		return
	}
	p := &pendingLogin{
		state: randomID(16), nonce: randomID(16), verifier: oauth2.GenerateVerifier(),
		returnTo: safeReturn(r.URL.Query().Get("return")), expires: c.cfg.Now().Add(loginTTL),
	}
	id := randomID(16)
	c.logins.add(id, p)
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: id, Path: "/", MaxAge: int(loginTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, // Lax: it must come back on the issuer's redirect
	})
	http.Redirect(w, r, oc.AuthCodeURL(p.state, oidc.Nonce(p.nonce), oauth2.S256ChallengeOption(p.verifier)), http.StatusFound)
}

// safeReturn keeps a return path inside the console.
func safeReturn(s string) string {
	if !strings.HasPrefix(s, Prefix) || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") ||
		strings.HasPrefix(s, Prefix+"login") || strings.HasPrefix(s, Prefix+"callback") || strings.HasPrefix(s, Prefix+"api/") {
		return Prefix
	}
	return s
}

// callback finishes a sign-in: it checks the state against the cookie's
// pending sign-in, redeems the code with the PKCE verifier, verifies the ID
// token and its nonce, and maps it to a principal as the gateway does.
// Only approvers and auditors get a session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	clearCookie(w, loginCookie)
	ck, err := r.Cookie(loginCookie)
	var p *pendingLogin
	ok := err == nil
	if ok {
		p, ok = c.logins.take(ck.Value)
	}
	if !ok {
		c.authPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in was not started here or took too long.", Prefix+"login")
		return
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		c.cfg.Log.Info("console sign-in refused by the issuer", "error", e)
		c.authPage(w, http.StatusUnauthorized, "Sign-in failed", "The identity provider said: "+e, Prefix+"login")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.state)) != 1 {
		c.authPage(w, http.StatusBadRequest, "Sign-in failed", "The sign-in state does not match; start again.", Prefix+"login")
		return
	}
	prov, oc, err := c.oidc.discover(r.Context())
	if err != nil {
		c.authPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable", "The identity provider cannot be reached.", Prefix+"login")
		return
	}
	ctx := c.oidc.ctx(r.Context())
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		c.cfg.Log.Info("console sign-in: redeeming the code", "err", err)
		c.authPage(w, http.StatusUnauthorized, "Sign-in failed", "The identity provider did not accept the sign-in code.", Prefix+"login")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	principal, idt, err := c.verify(ctx, prov, raw, p.nonce)
	if err != nil {
		c.cfg.Log.Info("console sign-in: ID token refused", "err", err)
		c.authPage(w, http.StatusUnauthorized, "Sign-in failed", "The identity token was not accepted.", Prefix+"login")
		return
	}
	role, err := c.roleOf(principal)
	if err != nil {
		c.cfg.Log.Info("console sign-in refused", "user", principal.User, "reason", err)
		c.authPage(w, http.StatusForbidden, "Access refused",
			fmt.Sprintf("You are signed in as %s, who is neither an approver nor an auditor. Ask your platform team for access.", principal.User), Prefix+"login")
		return
	}
	expires := c.cfg.Now().Add(c.cfg.SessionTTL)
	if idt.Expiry.Before(expires) {
		expires = idt.Expiry
	}
	sess := &session{id: randomID(32), principal: principal, role: role, idToken: raw, csrf: randomID(32), expires: expires}
	c.sessions.add(sess)
	c.cfg.Log.Info("console sign-in", "user", principal.User, "role", role)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.id, Path: "/", Expires: expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, p.returnTo, http.StatusFound)
}

// verify checks the ID token's signature, audience, expiry and nonce,
// then has the gateway's Authenticator map it to the principal kubectl
// would be with the same token.
func (c *Console) verify(ctx context.Context, prov *oidc.Provider, raw, nonce string) (*identity.Principal, *oidc.IDToken, error) {
	if raw == "" {
		return nil, nil, errors.New("the token response has no id_token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: c.cfg.ClientID, Now: c.cfg.Now}).Verify(ctx, raw)
	if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, nil, errors.New("the ID token's nonce is not this sign-in's")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.origin+Prefix, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	p, err := c.cfg.Authenticator.Authenticate(ctx, req)
	if err != nil {
		return nil, nil, fmt.Errorf("the gateway does not accept the ID token: %w", err)
	}
	return p, idt, nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.remove(s.id)
	clearCookie(w, sessionCookie)
	c.cfg.Log.Info("console sign-out", "user", s.principal.User)
	w.WriteHeader(http.StatusNoContent)
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// session returns the request's session, if its cookie names a live one.
func (c *Console) session(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	return c.sessions.get(ck.Value)
}

// withSession lets a request through with its session, and checks the
// CSRF token and origin of every state change.
func (c *Console) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "not signed in, or the session expired")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := c.checkCSRF(r, s); err != nil {
				c.cfg.Log.Warn("console request refused", "user", s.principal.User, "path", r.URL.Path, "err", err)
				writeError(w, http.StatusForbidden, metav1.StatusReasonForbidden, err.Error())
				return
			}
		}
		h(w, r, s)
	}
}

// checkCSRF wants the session's token in the CSRF header, and an Origin,
// when the browser sends one, that is the console's own.
func (c *Console) checkCSRF(r *http.Request, s *session) error {
	if o := r.Header.Get("Origin"); o != "" && o != c.origin {
		return fmt.Errorf("cross-origin request from %s refused", o)
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(s.csrf)) != 1 {
		return errors.New("missing or wrong CSRF token; reload the page")
	}
	return nil
}

func (c *Console) requireApprover(h func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if s.role != RoleApprover {
			writeError(w, http.StatusForbidden, metav1.StatusReasonForbidden, s.principal.User+" is an auditor: auditors change nothing")
			return
		}
		h(w, r, s)
	}
}

// meView is GET /ui/api/me.
type meView struct {
	User    string    `json:"user"`
	Groups  []string  `json:"groups"`
	Role    Role      `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
	// Node is the node serving the console: its live sessions can be
	// watched here.
	Node string `json:"node"`
}

func (c *Console) me(w http.ResponseWriter, _ *http.Request, s *session) {
	writeJSON(w, meView{User: s.principal.User, Groups: s.principal.Groups, Role: s.role, CSRF: s.csrf, Expires: s.expires, Node: c.cfg.NodeID})
}

var authTmpl = template.Must(template.New("auth").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · kubegate</title><link rel="stylesheet" href="/ui/style.css"><link rel="icon" href="/ui/favicon.svg"></head>
<body class="auth"><main class="auth-card">
<div class="brand"><span class="logo" aria-hidden="true"></span>kubegate <span class="brand-sub">console</span></div>
<h1 id="auth-title">{{.Title}}</h1><p id="auth-message">{{.Message}}</p>
{{if .Retry}}<p><a class="button primary" id="auth-retry" href="{{.Retry}}">Sign in again</a></p>{{end}}
</main></body></html>`))

// authPage shows a sign-in outcome that is not a session.
func (c *Console) authPage(w http.ResponseWriter, code int, title, msg, retry string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = authTmpl.Execute(w, struct{ Title, Message, Retry string }{title, msg, retry})
}
