package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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
	// Binary is a kubegate binary. Set, the node runs as a child process
	// (`kubegate serve`) on fixed ports, which Kill and Restart control;
	// its log goes to Dir/kubegate.log. Empty runs the node in this
	// process.
	Binary string
	// Audit is YAML added to the configuration's audit section, right
	// after audit.file.path: lines indented by four spaces go on under
	// file:, by two spaces they add to audit: (sinks:, spool:). Empty adds
	// nothing.
	Audit string
	// Pprof serves Go's profiles on the admin listener (admin.pprof), for
	// profiling a benchmark's kubegate from outside.
	Pprof bool
	// Console serves the web console, signing in with Dex's client, on an
	// address from Dex.ConsoleAddr (whose redirect URL Dex knows);
	// approvers are the policy's, auditors group dex:auditors. False
	// serves none.
	Console bool
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
	// ConsoleURL is the web console's address; empty without Console.
	ConsoleURL string
	// Node is the running node, when it runs in this process.
	Node *app.Node

	bin     string
	logPath string
	proc    *exec.Cmd
	exited  chan struct{}
}

// Users is who gets a kubeconfig through kubegate.
var Users = []string{"agent", "approver", "admin", "ci-bot"}

// bindings is the RBAC a platform team would grant the users.
var bindings = []struct {
	ns, role string
	subject  rbacv1.Subject
}{
	{"dev", "edit", group("dex:agents")},
	// Agents may change prod as far as RBAC goes; kubegate's policy holds
	// those changes for a person's approval.
	{"prod", "edit", group("dex:agents")},
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
	adminListen := "127.0.0.1:0"
	if o.Binary != "" {
		// A child process must come back on the same ports after a
		// restart: the kubeconfigs name them.
		o.Listen, adminListen = FreeAddr(), FreeAddr()
	}
	if o.Console {
		addr, err := env.Dex.ConsoleAddr()
		if err != nil {
			return nil, err
		}
		o.Listen = addr
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	// Everything the node writes goes under Dir: its data and, for a
	// child process, its log. The suite greps it for secrets at the end.
	env.NoteOutput(o.Dir)
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
  listen: %s
  pprof: %t
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
`, o.Listen, adminListen, o.Pprof, certFile, keyFile, upstream, env.Dex.Issuer, env.Dex.ClientID, env.CAFile, env.ServiceAccountIssuer, env.CAFile, s.AuditPath) + o.Audit
	if o.Console {
		// The client secret is the operator's input, kept apart from the
		// node's directory, whose every file the secrets-hygiene check
		// reads as kubegate's output.
		inputs, err := os.MkdirTemp(env.Dir, "console-inputs-")
		if err != nil {
			return nil, err
		}
		secretFile := filepath.Join(inputs, "client-secret")
		if err := os.WriteFile(secretFile, []byte(env.Dex.ClientSecret), 0o600); err != nil {
			return nil, err
		}
		cfgText += fmt.Sprintf(`console:
  enabled: true
  issuer: dex
  clientSecretFile: %s
  auditorGroups: ["dex:auditors"]
`, secretFile)
		s.ConsoleURL = "https://" + o.Listen + "/ui/"
	}
	cfgText += o.Policy
	if err := os.WriteFile(s.ConfigPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}
	cfg, err := app.LoadConfig(s.ConfigPath)
	if err != nil {
		return nil, err
	}
	if o.Binary != "" {
		s.bin, s.logPath = o.Binary, filepath.Join(o.Dir, "kubegate.log")
		s.URL, s.AdminURL = "https://"+o.Listen, "http://"+adminListen
		if err := s.Restart(ctx); err != nil {
			return nil, err
		}
	} else {
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

// Restart starts the child process (the first time, or after Kill) and
// waits until it is ready.
func (s *Stack) Restart(ctx context.Context) error {
	if s.bin == "" {
		return errors.New("stack: the node runs in this process; only a child process restarts")
	}
	if s.proc != nil {
		return errors.New("stack: the node is still running; Kill it first")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "serve", "--config", s.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	s.proc, s.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	if err := waitReady(ctx, readyzProbe{url: s.AdminURL, exited: s.exited}); err != nil {
		return fmt.Errorf("%w (log: %s)", err, s.logPath)
	}
	return nil
}

// Kill ends the child process with SIGKILL, as a crash would, and waits
// for it to exit.
func (s *Stack) Kill() error {
	if s.proc == nil {
		return errors.New("stack: no child process is running")
	}
	if err := s.proc.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	s.proc = nil
	return nil
}

// Stop ends the child process with SIGTERM, as a rolling restart does
// (it hands Raft leadership on and drains its sessions), and waits for it
// to exit.
func (s *Stack) Stop() error {
	if s.proc == nil {
		return errors.New("stack: no child process is running")
	}
	if err := s.proc.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	s.proc = nil
	return nil
}

// Running reports whether the child process runs.
func (s *Stack) Running() bool { return s.proc != nil }

// LogPath is the child process's log file ("" in this process).
func (s *Stack) LogPath() string { return s.logPath }

// readyzProbe asks a node's admin /readyz, and gives up once the process
// has exited.
type readyzProbe struct {
	url    string
	exited <-chan struct{}
}

// errExited ends waitReady early: the process is gone.
var errExited = errors.New("kubegate exited")

func (p readyzProbe) Ready(ctx context.Context) error {
	select {
	case <-p.exited:
		return errExited
	default:
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s: %s", resp.Status, b)
	}
	return nil
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readier is what waitReady polls.
type readier interface {
	Ready(ctx context.Context) error
}

func waitReady(ctx context.Context, node readier) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := node.Ready(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubegate never became ready: %w", err)
		case <-tick.C:
		}
	}
}
