package identity

import (
	"slices"
	"time"
)

// Principal is an authenticated caller: who kubegate impersonates upstream
// and what policy rules and audit events see.
type Principal struct {
	// User is the username after the issuer's prefix is applied.
	User string
	// UID is a stable identifier of the user, when the issuer gives one.
	UID string
	// Groups are the groups after the issuer's prefix is applied.
	Groups []string
	// Extra carries further attributes, forwarded as Impersonate-Extra-*.
	Extra map[string][]string
	// Issuer is the URL of the issuer that vouched for the token.
	Issuer string
	// Expiry is when the token expires.
	Expiry time.Time
	// Credential identifies the token without holding it: "sha256:" and
	// the first 16 hex digits of its SHA-256 (audit.AnnotationCredential),
	// from the hash the Authenticator computes for its cache anyway. Empty
	// when the Principal was not made from a bearer token by Authenticate.
	Credential string `json:"-"`
}

// Clone returns a deep copy of p, which the caller may modify freely.
func (p *Principal) Clone() *Principal {
	if p == nil {
		return nil
	}
	c := *p
	c.Groups = slices.Clone(p.Groups)
	if p.Extra != nil {
		c.Extra = make(map[string][]string, len(p.Extra))
		for k, v := range p.Extra {
			c.Extra[k] = slices.Clone(v)
		}
	}
	return &c
}
