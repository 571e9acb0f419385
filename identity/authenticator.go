package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Authenticator turns a request's bearer token into a Principal. It is safe
// for concurrent use.
type Authenticator struct {
	issuers map[string]*issuer // by URL, which a token's iss must equal
	ordered []*issuer          // in config order
	cache   *tokenCache
	now     func() time.Time
}

// New validates cfg and returns an Authenticator. It does not contact the
// issuers: their discovery documents and keys are fetched on first use (or
// by Ready).
func New(cfg Config) (*Authenticator, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("identity: no issuers configured")
	}
	switch {
	case cfg.CacheSize < 0:
		return nil, fmt.Errorf("identity: CacheSize %d is negative", cfg.CacheSize)
	case cfg.CacheSize == 0:
		cfg.CacheSize = DefaultCacheSize
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{
		issuers: make(map[string]*issuer, len(cfg.Issuers)),
		cache:   newTokenCache(cfg.CacheSize),
		now:     now,
	}
	for i, ic := range cfg.Issuers {
		ic, err := ic.normalize()
		if err != nil {
			return nil, fmt.Errorf("identity: issuer %d (%s): %w", i, ic.URL, err)
		}
		if _, dup := a.issuers[ic.URL]; dup {
			return nil, fmt.Errorf("identity: issuer %d: URL %s is configured twice", i, ic.URL)
		}
		client, err := issuerClient(cfg.HTTPClient, ic.CAFile)
		if err != nil {
			return nil, fmt.Errorf("identity: issuer %s: %w", ic.Name, err)
		}
		is := newIssuer(ic, client, now, log)
		a.issuers[ic.URL] = is
		a.ordered = append(a.ordered, is)
	}
	return a, nil
}

// Authenticate returns the Principal for r's bearer token, reading r but
// not modifying it. Its errors wrap ErrNoToken, ErrInvalidToken,
// ErrUnknownIssuer, ErrTokenInQuery or ErrIssuerUnavailable, and never
// contain the token. The returned Principal is the caller's to modify.
//
// A verified token is remembered (by its SHA-256) until it expires or for
// five minutes, whichever is sooner.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	token, err := bearerToken(r)
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256([]byte(token))
	now := a.now()
	if p, ok := a.cache.get(key, now); ok {
		return p, nil
	}
	if err := checkTokenChars(token); err != nil {
		return nil, err
	}
	u, err := peek(token)
	if err != nil {
		return nil, err
	}
	is, ok := a.issuers[u.iss]
	if !ok {
		return nil, ErrUnknownIssuer
	}
	if !slices.Contains(signingAlgs, u.alg) {
		return nil, is.invalid(errors.New("signing algorithm not allowed"))
	}
	p, err := is.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	p.Credential = credentialID(key)
	until := now.Add(maxCacheTTL)
	if p.Expiry.Before(until) {
		until = p.Expiry
	}
	if until.After(now) {
		a.cache.put(key, p, until)
		return p.Clone(), nil
	}
	return p, nil
}

// credentialID is Principal.Credential for a token's SHA-256.
func credentialID(sum tokenKey) string {
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// Ready returns nil when every issuer's discovery document and key set have
// been fetched successfully. For an issuer not yet fetched it tries now,
// unless an attempt was made less than a second ago, whose error it then
// returns. The error wraps ErrIssuerUnavailable for each issuer that is not
// ready.
func (a *Authenticator) Ready(ctx context.Context) error {
	errs := make([]error, len(a.ordered))
	var wg sync.WaitGroup
	for i, is := range a.ordered {
		wg.Go(func() { errs[i] = is.ensureReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
