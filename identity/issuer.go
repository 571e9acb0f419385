package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// minRefreshInterval is the shortest time between two fetches of one
// issuer's discovery document and key set, however many requests want one.
const minRefreshInterval = time.Second

// signingAlgs are the algorithms any token may be signed with: asymmetric
// only. HMAC would let anyone holding the (public) verification key sign,
// and "none" is no signature at all.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// issuer is one configured issuer: its config, and the discovery document
// and signing keys fetched lazily from it.
type issuer struct {
	cfg    IssuerConfig
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu          sync.Mutex
	disc        *discovery        // nil until discovery succeeds
	keys        []jose.JSONWebKey // signing keys from the last good fetch
	algs        []string          // algorithms accepted, from the last good fetch
	ready       bool              // discovery and a key set fetch have succeeded once
	failing     bool              // the last attempt failed
	lastAttempt time.Time         // start of the last attempt; zero before the first
	lastErr     error             // the last attempt's error (wraps ErrIssuerUnavailable), or nil
	inflight    chan struct{}     // closed when the running attempt ends; nil if none runs
}

// discovery is what kubegate uses from an issuer's discovery document.
type discovery struct {
	jwksURL string
	algs    []string // signingAlgs the issuer says it uses (all of them if it says none)
}

func newIssuer(cfg IssuerConfig, client *http.Client, now func() time.Time, log *slog.Logger) *issuer {
	return &issuer{cfg: cfg, client: client, now: now, log: log, algs: signingAlgs}
}

// ensureReady returns nil once discovery and a key set fetch have succeeded,
// fetching them now if they have not and the last attempt is not too recent.
func (is *issuer) ensureReady(ctx context.Context) error {
	is.mu.Lock()
	ready := is.ready
	is.mu.Unlock()
	if ready {
		return nil
	}
	return is.refresh(ctx)
}

// snapshot returns the current keys and accepted algorithms. Both are
// replaced, never modified, so the caller may use them without the lock.
func (is *issuer) snapshot() ([]jose.JSONWebKey, []string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys, is.algs
}

// refresh fetches the discovery document (if not yet known) and the key set,
// unless an attempt started less than minRefreshInterval ago: then it returns
// that attempt's result (waiting for it if it is still running). Concurrent
// callers share one attempt. The attempt runs in its own goroutine, bounded by
// the client's timeout, so a caller whose ctx ends stops waiting without
// failing the attempt for the others.
func (is *issuer) refresh(ctx context.Context) error {
	is.mu.Lock()
	done := is.inflight
	if done == nil {
		now := is.now()
		if since := now.Sub(is.lastAttempt); !is.lastAttempt.IsZero() && since >= 0 && since < minRefreshInterval {
			err := is.lastErr
			is.mu.Unlock()
			return err
		}
		is.lastAttempt = now
		done = make(chan struct{})
		is.inflight = done
		go is.fetch(done)
	}
	is.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: issuer %q: %w", ErrIssuerUnavailable, is.cfg.Name, ctx.Err())
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.lastErr
}

// fetch is one attempt; it records the outcome and closes done. Only one
// attempt runs at a time, so disc, ready and failing change only here.
func (is *issuer) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), is.client.Timeout)
	defer cancel()

	is.mu.Lock()
	disc, wasReady, wasFailing := is.disc, is.ready, is.failing
	is.mu.Unlock()

	var err error
	if disc == nil {
		disc, err = is.discover(ctx)
	}
	var keys []jose.JSONWebKey
	if err == nil {
		keys, err = fetchKeys(ctx, is.client, disc.jwksURL)
	}
	if err != nil {
		err = fmt.Errorf("%w: issuer %q: %w", ErrIssuerUnavailable, is.cfg.Name, err)
		if !wasFailing {
			is.log.Warn("identity: issuer unavailable", "issuer", is.cfg.Name, "err", err)
		}
	} else if wasFailing || !wasReady {
		is.log.Info("identity: issuer keys loaded", "issuer", is.cfg.Name, "keys", len(keys))
	}

	is.mu.Lock()
	defer is.mu.Unlock()
	if err != nil {
		// Forget the discovery document too, in case jwks_uri moved.
		is.disc, is.failing = nil, true
	} else {
		is.disc, is.keys, is.algs, is.ready, is.failing = disc, keys, disc.algs, true, false
	}
	is.lastErr = err
	is.inflight = nil
	close(done)
}

// discover fetches the issuer's discovery document with go-oidc, which also
// checks that it names this issuer.
func (is *issuer) discover(ctx context.Context) (*discovery, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, is.client), is.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if err := checkKeySetURL(meta.JWKSURL); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	d := &discovery{jwksURL: meta.JWKSURL}
	for _, a := range signingAlgs {
		if slices.Contains(meta.Algs, a) {
			d.algs = append(d.algs, a)
		}
	}
	if len(d.algs) == 0 {
		d.algs = signingAlgs
	}
	return d, nil
}

// checkKeySetURL holds jwks_uri to the same rule as issuer URLs: https, or
// http on a loopback IP.
func checkKeySetURL(raw string) error {
	if raw == "" {
		return errors.New("no jwks_uri")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwks_uri: %w", err)
	}
	if u.Scheme == "https" && u.Host != "" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("jwks_uri %q must be https", raw)
}
