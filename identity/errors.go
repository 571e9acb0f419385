package identity

import "errors"

// Errors that Authenticate and Ready wrap, with context, for callers to
// branch on with errors.Is. No error from this package contains the token or
// any part of it, nor a claim value taken from it.
var (
	// ErrNoToken: the request has no Authorization header, or one that is
	// not a Bearer credential.
	ErrNoToken = errors.New("identity: no bearer token")

	// ErrInvalidToken: the token is malformed, oversized, badly signed,
	// signed with a refused algorithm, expired, not yet valid, for another
	// audience, or its claims do not make a principal; also a request with
	// more than one Authorization header.
	ErrInvalidToken = errors.New("identity: invalid token")

	// ErrUnknownIssuer: the token's iss claim names no configured issuer.
	ErrUnknownIssuer = errors.New("identity: token issuer is not configured")

	// ErrTokenInQuery: the query string carries a token (an access_token or
	// token parameter, or anything shaped like a JWT). Tokens in URLs end up
	// in logs and histories, so such requests are refused outright.
	ErrTokenInQuery = errors.New("identity: token in query string refused")

	// ErrIssuerUnavailable: the issuer's discovery document or key set could
	// not be fetched, so the token could not be checked. It is never treated
	// as success.
	ErrIssuerUnavailable = errors.New("identity: issuer unavailable")
)
