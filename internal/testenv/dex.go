package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"
)

// User is a person or agent known to Dex, with a password login.
type User struct {
	Name     string
	Email    string
	Password string
	Groups   []string
}

// Dex is the running OIDC identity provider.
type Dex struct {
	// Issuer is Dex's issuer URL (https, signed by the Env's CA).
	Issuer string
	// ClientID is the OAuth2 client, and so the audience of ID tokens.
	ClientID string
	// ClientSecret is ClientID's secret.
	ClientSecret string
	// Users are the users that can log in, by Name.
	Users map[string]User
	// consoleAddrs are loopback addresses, free when Dex started, whose
	// https://ADDR/ui/callback are registered redirect URLs of ClientID:
	// a kubegate serving its web console listens on one (ConsoleAddr).
	consoleAddrs []string
	consoleMu    sync.Mutex
	consoleNext  int

	http *http.Client
	// note records the secrets Dex hands out (Env.NoteSecret).
	note func(what, value string)
}

// The users every Env's Dex knows.
var defaultUsers = []User{
	{Name: "agent", Email: "agent@kubegate.test", Groups: []string{"agents"}},
	{Name: "approver", Email: "approver@kubegate.test", Groups: []string{"approvers"}},
	{Name: "admin", Email: "admin@kubegate.test", Groups: []string{"platform-admins"}},
	{Name: "auditor", Email: "auditor@kubegate.test", Groups: []string{"auditors"}},
}

// dexConfig is the subset of Dex's configuration the harness writes.
type dexConfig struct {
	Issuer  string `json:"issuer"`
	Storage struct {
		Type string `json:"type"`
	} `json:"storage"`
	Web struct {
		HTTPS   string `json:"https"`
		TLSCert string `json:"tlsCert"`
		TLSKey  string `json:"tlsKey"`
	} `json:"web"`
	OAuth2 struct {
		PasswordConnector  string `json:"passwordConnector"`
		SkipApprovalScreen bool   `json:"skipApprovalScreen"`
	} `json:"oauth2"`
	Expiry struct {
		IDTokens string `json:"idTokens"`
	} `json:"expiry"`
	Logger struct {
		Level string `json:"level"`
	} `json:"logger"`
	EnablePasswordDB bool                `json:"enablePasswordDB"`
	StaticPasswords  []dexStaticPassword `json:"staticPasswords"`
	StaticClients    []dexStaticClient   `json:"staticClients"`
}

type dexStaticPassword struct {
	Email    string   `json:"email"`
	Hash     string   `json:"hash"`
	Username string   `json:"username"`
	UserID   string   `json:"userID"`
	Groups   []string `json:"groups"`
}

type dexStaticClient struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectURIs"`
}

func (e *Env) startDex(ctx context.Context, bin string, p *pki) error {
	port := freePort()
	d := &Dex{
		Issuer:       "https://127.0.0.1:" + strconv.Itoa(port) + "/dex",
		ClientID:     "kubegate",
		ClientSecret: randomString(24),
		Users:        map[string]User{},
		note:         e.NoteSecret,
	}
	redirects := []string{"http://127.0.0.1:8000/callback", "http://localhost:8000/callback"}
	for range consoleAddrCount {
		addr := "127.0.0.1:" + strconv.Itoa(freePort())
		d.consoleAddrs = append(d.consoleAddrs, addr)
		redirects = append(redirects, "https://"+addr+"/ui/callback")
	}
	e.NoteSecret("Dex's client secret", d.ClientSecret)
	var cfg dexConfig
	cfg.Issuer = d.Issuer
	cfg.Storage.Type = "memory"
	cfg.Web.HTTPS = "127.0.0.1:" + strconv.Itoa(port)
	cfg.Web.TLSCert, cfg.Web.TLSKey = p.dexCert, p.dexKey
	cfg.OAuth2.PasswordConnector = "local"
	cfg.OAuth2.SkipApprovalScreen = true
	cfg.Expiry.IDTokens = "1h"
	cfg.Logger.Level = "warn"
	cfg.EnablePasswordDB = true
	cfg.StaticClients = []dexStaticClient{{
		ID: d.ClientID, Secret: d.ClientSecret, Name: "kubegate",
		RedirectURIs: redirects,
	}}
	for i, u := range defaultUsers {
		u.Password = randomString(16)
		e.NoteSecret("the Dex password of "+u.Name, u.Password)
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost+6) // Dex requires cost >= 10
		if err != nil {
			return err
		}
		cfg.StaticPasswords = append(cfg.StaticPasswords, dexStaticPassword{
			Email: u.Email, Hash: string(hash), Username: u.Name, UserID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), Groups: u.Groups,
		})
		d.Users[u.Name] = u
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgFile := filepath.Join(e.Dir, "dex.yaml")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return err
	}
	proc, err := e.start("dex", bin, "serve", cfgFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.CertPEM)
	d.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	err = waitFor(ctx, 60*time.Second, "dex discovery", func() (bool, error) {
		if done, err := proc.exited(); done {
			return false, fmt.Errorf("dex stopped: %w", err)
		}
		resp, err := d.http.Get(d.Issuer + "/.well-known/openid-configuration")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return err
	}
	e.Dex = d
	return nil
}

// consoleAddrCount is how many kubegate web consoles one Env can serve.
const consoleAddrCount = 4

// ConsoleAddr hands out a listening address for a kubegate that serves
// its web console: Dex knows https://ADDR/ui/callback as a redirect URL of
// ClientID. Each call returns another; it fails once all are taken.
func (d *Dex) ConsoleAddr() (string, error) {
	d.consoleMu.Lock()
	defer d.consoleMu.Unlock()
	if d.consoleNext == len(d.consoleAddrs) {
		return "", fmt.Errorf("dex: all %d console addresses are taken", len(d.consoleAddrs))
	}
	d.consoleNext++
	return d.consoleAddrs[d.consoleNext-1], nil
}

// Token logs user in with the password grant and returns the ID token, whose
// audience is ClientID.
func (d *Dex) Token(ctx context.Context, user string) (string, error) {
	u, ok := d.Users[user]
	if !ok {
		return "", fmt.Errorf("dex has no user %q", user)
	}
	form := url.Values{
		"grant_type": {"password"},
		"username":   {u.Email},
		"password":   {u.Password},
		"scope":      {"openid email profile groups"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(d.ClientID, d.ClientSecret)
	resp, err := d.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("dex token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("dex token request: %s: %s", resp.Status, body)
	}
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", fmt.Errorf("decoding dex token response: %w", err)
	}
	if tok.IDToken == "" {
		return "", fmt.Errorf("dex token response has no id_token")
	}
	if d.note != nil {
		d.note("a Dex ID token of "+user, tok.IDToken)
	}
	return tok.IDToken, nil
}

// HTTPClient returns a client that trusts Dex's serving certificate.
func (d *Dex) HTTPClient() *http.Client { return d.http }
