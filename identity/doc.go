// Package identity turns a request's bearer token into a Principal by
// verifying it against the configured OIDC issuers.
package identity
