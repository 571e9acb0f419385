package gateway

import (
	"net/url"
	"strings"

	"github.com/kubegate/kubegate/identity"
	"github.com/kubegate/kubegate/k8swire"
)

// auditRequestURI is u's request URI as an audit event stores it. A query
// parameter that carries a credential (identity.RedactQuery: kubegate
// refuses those requests, and audits them) has its value replaced, and the
// masker's value patterns apply to every other value, such as a bearer
// token in an exec command.
func (g *Gateway) auditRequestURI(u *url.URL) string {
	if u.RawQuery == "" {
		return u.RequestURI()
	}
	c := *u
	c.RawQuery = g.maskQuery(identity.RedactQuery(u.RawQuery))
	return c.RequestURI()
}

// maskQuery applies the masker's value patterns to each value of a raw
// query; a value they change is written back escaped.
func (g *Gateway) maskQuery(raw string) string {
	if g.cfg.Masker == nil {
		return raw
	}
	parts := strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' })
	changed := false
	for i, p := range parts {
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			v = value
		}
		if m := g.maskText(v); m != v {
			parts[i], changed = name+"="+url.QueryEscape(m), true
		}
	}
	if !changed {
		return raw
	}
	return strings.Join(parts, "&")
}

// maskedRequest is r as a session recording stores it: an exec's argv with
// the masker's value patterns applied (the request itself is forwarded as
// it is), like the argv stored with an access request (maskTarget).
func (g *Gateway) maskedRequest(r k8swire.Request) k8swire.Request {
	if r.Stream == nil || len(r.Stream.Command) == 0 {
		return r
	}
	s := *r.Stream
	s.Command = make([]string, len(r.Stream.Command))
	for i, c := range r.Stream.Command {
		s.Command[i] = g.maskText(c)
	}
	r.Stream = &s
	return r
}
