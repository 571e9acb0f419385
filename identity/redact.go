package identity

import "strings"

// Redacted replaces a credential RedactQuery takes out.
const Redacted = "REDACTED"

// RedactQuery returns raw, a URL's query string, with every parameter that
// carries a credential replaced: those checkQuery refuses (access_token,
// token, a name or value holding a JWT). Everything else, separators
// included, is left as it was. A refused request is still audited; its
// token must not be.
func RedactQuery(raw string) string {
	var b strings.Builder
	for raw != "" {
		part := raw
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			part, raw = raw[:i], raw[i:] // raw keeps the separator
		} else {
			raw = ""
		}
		rawName, _, _ := strings.Cut(part, "=")
		name, value, _ := strings.Cut(part, "=")
		name, value = unescape(name), unescape(value)
		switch {
		case containsJWT(name):
			part = Redacted
		case strings.EqualFold(name, "access_token") || strings.EqualFold(name, "token") || containsJWT(value):
			part = rawName + "=" + Redacted
		}
		b.WriteString(part)
		if raw != "" {
			b.WriteByte(raw[0])
			raw = raw[1:]
		}
	}
	return b.String()
}
