package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// reservedPrefix is Kubernetes' namespace for its own identities
// (system:masters, system:serviceaccount:...). An OIDC issuer's users and
// groups may not land in it: kubegate impersonates them upstream.
const reservedPrefix = "system:"

// Names kube-apiserver gives ServiceAccounts, and the Extra keys it sets for
// them (k8s.io/apiserver/pkg/authentication/serviceaccount and .../user).
const (
	serviceAccountUserPrefix  = "system:serviceaccount:"
	serviceAccountsGroup      = "system:serviceaccounts"
	serviceAccountGroupPrefix = "system:serviceaccounts:"

	extraPodName      = "authentication.kubernetes.io/pod-name"
	extraPodUID       = "authentication.kubernetes.io/pod-uid"
	extraNodeName     = "authentication.kubernetes.io/node-name"
	extraNodeUID      = "authentication.kubernetes.io/node-uid"
	extraCredentialID = "authentication.kubernetes.io/credential-id"
)

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused rather
// than overflowing.
const maxNumericDate = 253402300799

// claims is a verified token payload, decoded one level deep. Errors from
// its methods name the claim, never its value.
type claims map[string]json.RawMessage

func parseClaims(payload []byte) (claims, error) {
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil || c == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	return c, nil
}

// present reports whether the claim is there and not null.
func (c claims) present(name string) bool {
	raw, ok := c[name]
	return ok && string(raw) != "null"
}

// str returns a string claim; ok is false if it is absent or not a string.
func (c claims) str(name string) (s string, ok bool) {
	if !c.present(name) {
		return "", false
	}
	return s, json.Unmarshal(c[name], &s) == nil
}

// strs returns a claim that is a string or a list of strings; nil if absent.
func (c claims) strs(name string) ([]string, error) {
	if !c.present(name) {
		return nil, nil
	}
	if s, ok := c.str(name); ok {
		return []string{s}, nil
	}
	var l []string
	if json.Unmarshal(c[name], &l) != nil {
		return nil, fmt.Errorf("claim %q is not a string or a list of strings", name)
	}
	return l, nil
}

// time returns a NumericDate claim (seconds since the epoch, maybe
// fractional); ok is false if it is absent.
func (c claims) time(name string) (t time.Time, ok bool, err error) {
	if !c.present(name) {
		return time.Time{}, false, nil
	}
	var f float64
	if json.Unmarshal(c[name], &f) != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, false, fmt.Errorf("claim %q is not a valid NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func (c claims) hasAudience(aud string) bool {
	auds, err := c.strs("aud")
	return err == nil && slices.Contains(auds, aud)
}

// principal maps verified, time-checked claims to a Principal.
func (is *issuer) principal(c claims) (*Principal, error) {
	for _, name := range slices.Sorted(maps.Keys(is.cfg.RequiredClaims)) {
		if got, ok := c.str(name); !ok || got != is.cfg.RequiredClaims[name] {
			return nil, is.invalid(fmt.Errorf("required claim %q missing or different", name))
		}
	}
	var p *Principal
	var err error
	if is.cfg.Kind == KindKubernetes {
		p, err = is.serviceAccount(c)
	} else {
		p, err = is.oidcUser(c)
	}
	if err == nil {
		err = checkPrintable(p)
	}
	if err != nil {
		return nil, is.invalid(err)
	}
	p.Issuer = is.cfg.URL
	p.Expiry, _, _ = c.time("exp")
	return p, nil
}

// oidcUser maps an OIDC issuer's claims as the config says.
func (is *issuer) oidcUser(c claims) (*Principal, error) {
	claim := is.cfg.UsernameClaim
	name, ok := c.str(claim)
	if !ok || name == "" {
		return nil, fmt.Errorf("username claim %q is missing, empty or not a string", claim)
	}
	if claim == "email" && c.present("email_verified") {
		// As kube-apiserver: if the issuer says, the address must be verified.
		var verified bool
		if json.Unmarshal(c["email_verified"], &verified) != nil || !verified {
			return nil, errors.New("email_verified is not true")
		}
	}
	p := &Principal{User: is.cfg.UsernamePrefix + name}
	if is.cfg.GroupsClaim != "" {
		groups, err := c.strs(is.cfg.GroupsClaim)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			if g != "" {
				p.Groups = append(p.Groups, is.cfg.GroupsPrefix+g)
			}
		}
	}
	if strings.HasPrefix(p.User, reservedPrefix) {
		return nil, fmt.Errorf("username is in the reserved %q namespace", reservedPrefix)
	}
	for _, g := range p.Groups {
		if strings.HasPrefix(g, reservedPrefix) {
			return nil, fmt.Errorf("a group is in the reserved %q namespace", reservedPrefix)
		}
	}
	return p, nil
}

// objectRef is a name and UID in a ServiceAccount token's kubernetes.io claim.
type objectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// serviceAccount maps a ServiceAccount token's claims to the user
// kube-apiserver's ServiceAccount authenticator would make of it. It cannot
// check, as the apiserver does, that the ServiceAccount and the pod, node or
// secret the token is bound to still exist.
func (is *issuer) serviceAccount(c claims) (*Principal, error) {
	var k struct {
		Namespace      string     `json:"namespace"`
		ServiceAccount *objectRef `json:"serviceaccount"`
		Pod            *objectRef `json:"pod"`
		Node           *objectRef `json:"node"`
	}
	if !c.present("kubernetes.io") || json.Unmarshal(c["kubernetes.io"], &k) != nil {
		return nil, errors.New("no valid kubernetes.io claim")
	}
	if k.Namespace == "" || k.ServiceAccount == nil || k.ServiceAccount.Name == "" {
		return nil, errors.New("kubernetes.io claim lacks the namespace or service account")
	}
	sub, _ := c.str("sub")
	if sub != serviceAccountUserPrefix+k.Namespace+":"+k.ServiceAccount.Name {
		return nil, errors.New("sub does not name the kubernetes.io service account")
	}
	pre := is.cfg.GroupsPrefix
	p := &Principal{
		User:   is.cfg.UsernamePrefix + sub,
		UID:    k.ServiceAccount.UID,
		Groups: []string{pre + serviceAccountsGroup, pre + serviceAccountGroupPrefix + k.Namespace},
	}
	extra := map[string][]string{}
	if k.Pod != nil && k.Pod.Name != "" && k.Pod.UID != "" {
		extra[extraPodName] = []string{k.Pod.Name}
		extra[extraPodUID] = []string{k.Pod.UID}
	}
	if k.Node != nil && k.Node.Name != "" {
		extra[extraNodeName] = []string{k.Node.Name}
		if k.Node.UID != "" {
			extra[extraNodeUID] = []string{k.Node.UID}
		}
	}
	if jti, ok := c.str("jti"); ok && jti != "" {
		extra[extraCredentialID] = []string{"JTI=" + jti}
	}
	if len(extra) > 0 {
		p.Extra = extra
	}
	return p, nil
}

// checkPrintable refuses control characters anywhere in p: its fields become
// Impersonate-* headers and log attributes.
func checkPrintable(p *Principal) error {
	ok := printable(p.User) && printable(p.UID)
	for _, g := range p.Groups {
		ok = ok && printable(g)
	}
	for _, vs := range p.Extra {
		for _, v := range vs {
			ok = ok && printable(v)
		}
	}
	if !ok {
		return errors.New("a username, UID, group or extra value has control characters")
	}
	return nil
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
