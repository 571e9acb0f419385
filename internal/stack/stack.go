package stack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kubegate/kubegate/internal/app"
	"github.com/kubegate/kubegate/internal/testenv"
	rbacv1 "k8s.io/api/rbac/v1"
)

// Options configure Start.
type Options struct {
	// Dir receives kubegate.yaml, the kubeconfigs and kubegate's data
	// (audit events). Required.
	Dir string
	// Policy is the YAML `policy:` section of kubegate's configuration.
	// Required.
	Policy string
	// Listen is the gateway's address. Empty means a free loopback port.
	Listen string
	// Log receives kubegate's log. Nil discards it.
	Log *slog.Logger
	// Credentials writes each user's kubeconfig credential. Nil means a
	// static bearer token minted now (fine for tests; it expires in an hour).
	Credentials func(ctx context.Context, user, server, kubeconfigPath string) error
}

// Stack is a running kubegate node in front of the Env's cluster.
type Stack struct {
	// URL is kubegate's https URL; AdminURL its admin listener.
	URL, AdminURL string
	// ConfigPath is the kubegate.yaml the node runs with.
	ConfigPath string
	// AuditPath is the JSON-lines audit file.
	AuditPath string
	// Kubeconfigs through kubegate, by user: "agent" (Dex, group
	// dex:agents), "approver" (dex:approvers), "admin" (dex:platform-admins)
	// and "ci-bot" (the ServiceAccount dev/ci-bot).
	Kubeconfigs map[string]string
	// Node is the running node.
	Node *app.Node
}

// Users is who gets a kubeconfig through kubegate.
var Users = []string{"agent", "approver", "admin", "ci-bot"}

// bindings is the RBAC a platform team would grant the users.
var bindings = []struct {
	ns, role string
	subject  rbacv1.Subject
}{
	{"dev", "edit", group("dex:agents")},
	{"prod", "view", group("dex:agents")},
	{"dev", "view", group("dex:approvers")},
	{"prod", "view", group("dex:approvers")},
	{"dev", "admin", group("dex:platform-admins")},
	{"prod", "admin", group("dex:platform-admins")},
	{"dev", "edit", rbacv1.Subject{Kind: "ServiceAccount", Name: "ci-bot", Namespace: "dev"}},
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: name}
}

// Start writes kubegate's configuration, starts a node in this process
// until ctx ends, waits until it is ready, grants RBAC and writes the users'
// kubeconfigs.
func Start(ctx context.Context, env *testenv.Env, o Options) (*Stack, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	upstream, err := env.GatewayKubeconfig(ctx)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := env.IssueServingCert("kubegate")
	if err != nil {
		return nil, err
	}
	s := &Stack{ConfigPath: filepath.Join(o.Dir, "kubegate.yaml"), AuditPath: filepath.Join(o.Dir, "data", "audit", "events.jsonl"), Kubeconfigs: map[string]string{}}
	cfgText := fmt.Sprintf(`# kubegate configuration written by the demo; see examples/kubegate.yaml.
listen: %s
admin:
  listen: 127.0.0.1:0
tls:
  certFile: %s
  keyFile: %s
upstream:
  kubeconfig: %s
identity:
  issuers:
  - name: dex
    url: %s
    audience: %s
    caFile: %s
    usernameClaim: email
    groupsClaim: groups
    groupsPrefix: "dex:"
  - name: cluster
    kind: kubernetes
    url: %s
    audience: kubegate
    caFile: %s
audit:
  file:
    path: %s
`, o.Listen, certFile, keyFile, upstream, env.Dex.Issuer, env.Dex.ClientID, env.CAFile, env.ServiceAccountIssuer, env.CAFile, s.AuditPath) + o.Policy
	if err := os.WriteFile(s.ConfigPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}
	cfg, err := app.LoadConfig(s.ConfigPath)
	if err != nil {
		return nil, err
	}
	if s.Node, err = app.New(cfg, o.Log); err != nil {
		return nil, err
	}
	go func() {
		if err := s.Node.Run(ctx); err != nil {
			o.Log.Error("kubegate stopped", "err", err)
		}
	}()
	s.URL, s.AdminURL = "https://"+s.Node.Addr(), "http://"+s.Node.AdminAddr()
	if err := waitReady(ctx, s.Node); err != nil {
		return nil, err
	}
	for _, b := range bindings {
		if err := env.Bind(ctx, b.ns, b.role, b.subject); err != nil {
			return nil, err
		}
	}
	if err := env.CreateServiceAccount(ctx, "dev", "ci-bot"); err != nil {
		return nil, err
	}
	creds := o.Credentials
	if creds == nil {
		creds = func(ctx context.Context, user, server, path string) error {
			return staticToken(ctx, env, server, user, path)
		}
	}
	for _, u := range Users {
		path := filepath.Join(o.Dir, u+".kubeconfig")
		if err := creds(ctx, u, s.URL, path); err != nil {
			return nil, fmt.Errorf("kubeconfig for %s: %w", u, err)
		}
		s.Kubeconfigs[u] = path
	}
	return s, nil
}

// staticToken writes a kubeconfig for user with a token minted now: a Dex
// ID token, or for ci-bot a ServiceAccount token with audience kubegate.
func staticToken(ctx context.Context, env *testenv.Env, server, user, path string) error {
	var tok string
	var err error
	if user == "ci-bot" {
		tok, err = env.ServiceAccountToken(ctx, "dev", "ci-bot", "kubegate", time.Hour)
	} else {
		tok, err = env.Dex.Token(ctx, user)
	}
	if err != nil {
		return err
	}
	return env.WriteTokenKubeconfig(path, server, "dev", tok)
}

func waitReady(ctx context.Context, node *app.Node) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := node.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubegate never became ready: %w", err)
		case <-tick.C:
		}
	}
}
