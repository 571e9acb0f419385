package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

var _ oidc.KeySet = (*sigCheck)(nil)

// verify checks token fully against this issuer at time now and maps its
// claims to a Principal. go-oidc checks the algorithm, signature (through
// sigCheck), iss, aud and exp (against now minus the skew); kubegate then
// checks exp, nbf and iat with the skew both ways, and the claims.
func (is *issuer) verify(ctx context.Context, token string, now time.Time) (*Principal, error) {
	if err := is.ensureReady(ctx); err != nil {
		return nil, err
	}
	_, algs := is.snapshot()
	sc := &sigCheck{is: is, algs: make([]jose.SignatureAlgorithm, len(algs))}
	for i, a := range algs {
		sc.algs[i] = jose.SignatureAlgorithm(a)
	}
	v := oidc.NewVerifier(is.cfg.URL, sc, &oidc.Config{
		ClientID:             is.cfg.Audience,
		SupportedSigningAlgs: algs,
		Now:                  func() time.Time { return now.Add(-is.cfg.ClockSkew) },
	})
	if _, err := v.Verify(ctx, token); err != nil {
		return nil, is.classify(err, sc, now)
	}
	c, err := parseClaims(sc.payload)
	if err != nil {
		return nil, is.invalid(err)
	}
	if err := is.checkTimes(c, now); err != nil {
		return nil, err
	}
	return is.principal(c)
}

// classify turns go-oidc's error, whose text may quote claims, into one of
// ours, which never does.
func (is *issuer) classify(err error, sc *sigCheck, now time.Time) error {
	var expired *oidc.TokenExpiredError
	switch {
	case sc.err != nil:
		return sc.err
	case !sc.called:
		// go-oidc parses the JWS, refusing other algorithms, before it
		// asks for the signature to be checked.
		return is.invalid(errors.New("malformed JWS or algorithm not allowed"))
	case errors.As(err, &expired) && expired.Expiry.IsZero():
		return is.invalid(errors.New("no exp claim"))
	case errors.As(err, &expired):
		return is.invalid(errors.New("token has expired"))
	}
	// The signature verified; go-oidc refused a claim.
	c, perr := parseClaims(sc.payload)
	if perr != nil {
		return is.invalid(perr)
	}
	if terr := is.checkTimes(c, now); terr != nil {
		return terr
	}
	if !c.hasAudience(is.cfg.Audience) {
		return is.invalid(errors.New("audience not accepted"))
	}
	return is.invalid(errors.New("claims refused by the verifier"))
}

// checkTimes checks exp, nbf and iat against now with the issuer's skew.
func (is *issuer) checkTimes(c claims, now time.Time) error {
	skew := is.cfg.ClockSkew
	exp, ok, err := c.time("exp")
	switch {
	case err != nil:
		return is.invalid(err)
	case !ok:
		return is.invalid(errors.New("no exp claim"))
	case exp.Before(now.Add(-skew)):
		return is.invalid(errors.New("token has expired"))
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := c.time(name)
		switch {
		case err != nil:
			return is.invalid(err)
		case ok && t.After(now.Add(skew)):
			return is.invalid(fmt.Errorf("%s is in the future", name))
		}
	}
	return nil
}

// invalid wraps reason, which must not quote the token, as ErrInvalidToken.
func (is *issuer) invalid(reason error) error {
	return fmt.Errorf("%w: issuer %q: %w", ErrInvalidToken, is.cfg.Name, reason)
}
