package k8swire

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaskMarker replaces every string value a rule masks and every pattern
// match. It is fixed, so the length of what it hides is hidden too.
const MaskMarker = "***kubegate-masked***"

// MaskMarkerBase64 replaces the values of base64 fields ([]byte in the Go
// types, such as a Secret's data): the base64 of MaskMarker, so decoders
// that expect base64 keep working and see MaskMarker.
const MaskMarkerBase64 = "Kioqa3ViZWdhdGUtbWFza2VkKioq"

// LastAppliedAnnotation is the annotation in which kubectl apply keeps a
// copy of the applied object, data included.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Defaults for the zero values of MaskConfig's limits.
const (
	// DefaultMaxPatternLen is the longest secret a StreamMasker can see
	// whole when it arrives split over several writes.
	DefaultMaxPatternLen = 16 << 10
	// DefaultMaxWatchEvent is the largest watch event MaskWatch accepts,
	// the limit client-go's watch decoder applies too.
	DefaultMaxWatchEvent = 16 << 20
)

// ErrInvalidMaskConfig marks a MaskConfig that Validate refuses.
var ErrInvalidMaskConfig = errors.New("invalid mask config")

// MaskConfig says which values the Masker hides from responses. The zero
// value masks nothing.
type MaskConfig struct {
	// DefaultRules adds the built-in rules, DefaultMaskRules: core Secret
	// `data` and `stringData` values, and the
	// kubectl.kubernetes.io/last-applied-configuration annotation of
	// Secrets (it repeats the data). False adds no rule.
	DefaultRules bool `json:"defaultRules,omitempty"`
	// Rules mask fields of the objects of one resource each. Nil masks no
	// field beyond the default rule.
	Rules []MaskRule `json:"rules,omitempty"`
	// DefaultPatterns adds DefaultMaskPatterns: JWTs, PEM private key blocks
	// (also base64-encoded, as in a kubeconfig), AWS access key ids
	// (AKIA/ASIA...) and the token of `Bearer <token>`. False adds none.
	DefaultPatterns bool `json:"defaultPatterns,omitempty"`
	// Patterns are Go regexps applied to every string value of every
	// response body (after the field rules), to text bodies such as logs,
	// and to exec and attach output. A match is replaced by MaskMarker; if
	// the pattern has a group named "mask", only that group is. A pattern
	// may not match the empty string or MaskMarker. Nil adds none.
	Patterns []string `json:"patterns,omitempty"`
	// MaxPatternLen is how many bytes a StreamMasker may hold back while
	// they could still be the start of a match: the longest secret it masks
	// whole when it arrives split over writes. Zero means
	// DefaultMaxPatternLen.
	MaxPatternLen int `json:"maxPatternLen,omitempty"`
	// MaxWatchEvent is the largest watch event, in bytes, that MaskWatch
	// reads; a larger one ends the watch with an error. Zero means
	// DefaultMaxWatchEvent.
	MaxWatchEvent int `json:"maxWatchEvent,omitempty"`
}

// MaskRule masks fields of the objects of one resource, in every response
// that carries them: get, list, watch, create, update, patch and delete
// responses, Table rows that include the object, and the
// last-applied-configuration annotation of those objects.
type MaskRule struct {
	// Name identifies the rule in errors. Empty names it by its index.
	Name string `json:"name,omitempty"`
	// APIGroup is the resource's API group; "" is the core group.
	APIGroup string `json:"apiGroup,omitempty"`
	// Resource is the plural resource name, e.g. "secrets", "configmaps",
	// "pods". Required.
	Resource string `json:"resource"`
	// Fields are the paths of the values to mask, at least one: "data" (a
	// map: every value of it), "metadata.annotations.<key>" (one value of
	// a map; where the Go type is known, as in metadata and the built-in
	// kinds, the rest of the path after a map is its key, dots and all;
	// elsewhere write spec.settings["a.b/c"]),
	// "spec.containers[].env[].value" (a list, then a field of each of its
	// elements). A path that ends at an object or a list masks every string
	// within it. Numbers and booleans are never masked. Paths into the
	// built-in kinds are checked against their Go types.
	Fields []string `json:"fields"`
	// KeyPattern is a regexp that limits which keys of a map at the end of a
	// path are masked, e.g. (?i)password|token|secret|key for ConfigMap data.
	// Empty masks every key.
	KeyPattern string `json:"keyPattern,omitempty"`
	// NamePattern is a regexp that limits masking to the list elements whose
	// sibling "name" matches it, as in env lists: the "name" field of the
	// object that holds the last field of the path. Empty masks every
	// element. It needs a path whose last segment is a field, not "[]".
	NamePattern string `json:"namePattern,omitempty"`
}

// DefaultMaskRules returns the rules MaskConfig.DefaultRules adds.
func DefaultMaskRules() []MaskRule {
	return []MaskRule{{
		Name:     "core-secrets",
		Resource: "secrets",
		Fields:   []string{"data", "stringData", "metadata.annotations." + LastAppliedAnnotation},
	}}
}

// DefaultMaskPatterns returns the patterns MaskConfig.DefaultPatterns adds.
func DefaultMaskPatterns() []string { return slices.Clone(defaultPatterns) }

var defaultPatterns = []string{
	// JWTs: a base64url JSON header and payload, and a signature.
	`eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`,
	// PEM private keys (PKCS#1, PKCS#8, EC, OpenSSH, PGP): the header, any
	// RFC 1421 header lines, the base64 body and the footer, which may be
	// missing from a truncated key.
	`-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:\s*[A-Za-z][A-Za-z0-9-]*: [^\r\n]*)*[A-Za-z0-9+/=\s]*(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?`,
	// The same, base64-encoded from their first line, as kubeconfig
	// client-key-data and Secret manifests hold them; lines wrapped.
	`LS0tLS1CRUdJTiB(?:QUklWQVRFIEtFWS0tLS0t|SU0EgUFJJVkFURSBLRVktLS0t|FQyBQUklWQVRFIEtFWS0tLS0t|EU0EgUFJJVkFURSBLRVktLS0t|PUEVOU1NIIFBSSVZBVEUgS0VZLS0t|FTkNSWVBURUQgUFJJVkFURSBLRVktLS0t)[A-Za-z0-9+/]*(?:\r?\n[A-Za-z0-9+/]+)*={0,2}`,
	// AWS access key ids, long-lived and temporary. No \b in front: in
	// terminal output an escape sequence may end right before one.
	`(?:AKIA|ASIA)[A-Z0-9]{16}\b`,
	// The token of a Bearer credential.
	`(?i)\bbearer[ \t]+(?P<mask>[A-Za-z0-9\-._~+/]{8,}=*)`,
}

// Validate reports the first problem with c: a bad regexp, a rule without
// resource or fields, a malformed path or one that the rule's kind does
// not have, a pattern that matches the empty string or MaskMarker, or a
// negative limit. Errors wrap ErrInvalidMaskConfig.
func (c MaskConfig) Validate() error {
	_, err := compileMaskConfig(c)
	return err
}

// ruleName names the rule with index i in errors.
func ruleName(r MaskRule, i int) string {
	if r.Name != "" {
		return strconv.Quote(r.Name)
	}
	return "#" + strconv.Itoa(i)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMaskConfig, fmt.Sprintf(format, args...))
}

// rawSeg is one syntactic segment of a field path.
type rawSeg struct {
	name   string
	quoted bool // written as ["..."]: a map key, never split or resolved
	array  bool // followed by []
	// rest is the path text from the start of this segment to the end, for
	// map keys that contain dots.
	rest string
}

// parseFieldPath splits a path such as
// `spec.containers[].env[].value` or `metadata.annotations["a.b/c"]`.
func parseFieldPath(p string) ([]rawSeg, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	var segs []rawSeg
	i := 0
	for i < len(p) {
		start := i
		var seg rawSeg
		if strings.HasPrefix(p[i:], `["`) {
			q, err := strconv.QuotedPrefix(p[i+1:])
			if err != nil || !strings.HasPrefix(p[i+1+len(q):], "]") {
				return nil, fmt.Errorf("bad quoted key at offset %d", i)
			}
			seg.name, _ = strconv.Unquote(q)
			seg.quoted = true
			i += 1 + len(q) + 1
		} else {
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' && p[j] != ']' && p[j] != '"' {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("empty segment at offset %d", i)
			}
			seg.name = p[i:j]
			i = j
		}
		if strings.HasPrefix(p[i:], "[]") {
			seg.array = true
			i += 2
		}
		seg.rest = p[start:]
		segs = append(segs, seg)
		switch {
		case i == len(p):
		case p[i] == '.' && i+1 < len(p):
			i++
		case strings.HasPrefix(p[i:], `["`):
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", p[i], i)
		}
	}
	return segs, nil
}

// compileRegexp compiles an optional regexp of a rule.
func compileRegexp(what, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidMaskConfig, what, err)
	}
	return re, nil
}
