package agentcred

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// maxResponse bounds how much of an issuer's response is read.
const maxResponse = 1 << 20

// GrantError is an issuer's refusal of the password grant: wrong password,
// unknown client, grant type not enabled.
type GrantError struct {
	// Issuer is the issuer URL the grant was sent to.
	Issuer string
	// Status is the HTTP status line, such as "401 Unauthorized".
	Status string
	// StatusCode is the HTTP status code.
	StatusCode int
	// Code and Description are the OAuth2 error and error_description, with
	// any echo of the password or client secret redacted. When the body is
	// not an OAuth2 error, Description holds the start of it.
	Code, Description string
}

func (e *GrantError) Error() string {
	msg := fmt.Sprintf("oidc password grant at %s: %s", e.Issuer, e.Status)
	for _, s := range []string{e.Code, e.Description} {
		if s != "" {
			msg += ": " + s
		}
	}
	return msg
}

// login runs discovery and the password grant, and returns the ID token.
func (s *OIDCPassword) login(ctx context.Context) (string, error) {
	issuer := s.cfg.Issuer
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, s.http), issuer)
	if err != nil {
		return "", fmt.Errorf("oidc discovery at %s: %w", issuer, err)
	}
	tokenURL := provider.Endpoint().TokenURL
	if tokenURL == "" {
		return "", fmt.Errorf("oidc discovery at %s: no token_endpoint", issuer)
	}
	form := url.Values{
		"grant_type": {"password"},
		"username":   {s.cfg.Username},
		"password":   {s.cfg.Password},
		"scope":      {strings.Join(s.scopes, " ")},
	}
	if s.cfg.ClientSecret == "" {
		form.Set("client_id", s.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("oidc password grant at %s: %w", issuer, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if s.cfg.ClientSecret != "" {
		// RFC 6749 section 2.3.1: both parts are form-encoded first.
		req.SetBasicAuth(url.QueryEscape(s.cfg.ClientID), url.QueryEscape(s.cfg.ClientSecret))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("oidc password grant at %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", fmt.Errorf("oidc password grant at %s: reading the response: %w", issuer, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", s.grantError(resp, body)
	}
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", fmt.Errorf("oidc password grant at %s: decoding the token response: %w", issuer, err)
	}
	if tok.IDToken == "" {
		return "", fmt.Errorf("oidc password grant at %s: %w", issuer, errNoIDToken)
	}
	return tok.IDToken, nil
}

var errNoIDToken = errors.New(`the token response has no id_token (is "openid" among the scopes?)`)

// grantError describes a refused grant without the secrets that were sent.
func (s *OIDCPassword) grantError(resp *http.Response, body []byte) *GrantError {
	e := &GrantError{Issuer: s.cfg.Issuer, Status: resp.Status, StatusCode: resp.StatusCode}
	var oe struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
		e.Code, e.Description = oe.Error, oe.Description
	} else {
		e.Description = strings.TrimSpace(string(body))
	}
	// Redact before cutting, so that no prefix of a secret survives the cut.
	e.Code = s.redact(e.Code)
	e.Description = s.redact(e.Description)
	const maxDescription = 200
	if len(e.Description) > maxDescription {
		e.Description = strings.ToValidUTF8(e.Description[:maxDescription], "") + "..."
	}
	return e
}

// redact removes the password and client secret, plain or form-encoded,
// from text an issuer sent back.
func (s *OIDCPassword) redact(text string) string {
	for _, secret := range []string{s.cfg.Password, s.cfg.ClientSecret} {
		if secret == "" {
			continue
		}
		text = strings.ReplaceAll(text, secret, "[redacted]")
		text = strings.ReplaceAll(text, url.QueryEscape(secret), "[redacted]")
	}
	return text
}
