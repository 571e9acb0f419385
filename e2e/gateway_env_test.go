package e2e

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
)

// gatewayEnv is a kubegate node in front of the shared cluster, with
// kubeconfigs for the test identities.
type gatewayEnv struct {
	url       string
	adminURL  string
	auditPath string
	// configPath is the node's kubegate.yaml.
	configPath string
	// Kubeconfigs through kubegate: the Dex user "agent" (group
	// dex:agents), the Dex user "admin" (dex:platform-admins) and the
	// ServiceAccount dev/ci-bot.
	agentKubeconfig, adminKubeconfig, botKubeconfig string
}

var (
	gwOnce sync.Once
	gwEnv  *gatewayEnv
	gwErr  error
)

// testPolicy is the policy the end-to-end tests run kubegate with.
const testPolicy = `
masking:
  rules:
  - name: configmap-passwords
    resource: configmaps
    fields: ["data"]
    keyPattern: "(?i)password|token|secret"
  - name: pod-env-secrets
    resource: pods
    fields: ["spec.containers[].env[].value"]
    namePattern: "(?i)password|token|secret"
  exemptGroups: ["dex:platform-admins"]
policy:
  defaultRules: true
  rules:
  - name: no-deletes-in-prod
    namespaces: ["prod"]
    verbs: ["delete", "deletecollection"]
    action: deny
    message: deleting in prod needs a change ticket
  - name: prod-secrets-need-approval
    namespaces: ["prod"]
    resources: ["secrets"]
    action: require-approval
    holdTimeout: 1s
    message: an approver releases secrets in prod
  - name: read-only-exec-in-prod
    namespaces: ["prod"]
    resources: ["pods/exec"]
    expression: 'request.stream.command == ["cat", "/etc/os-release"] && !request.stream.tty'
    action: allow
  - name: no-other-exec-in-prod
    namespaces: ["prod"]
    resources: ["pods/exec", "pods/attach"]
    action: deny
    message: only 'cat /etc/os-release' may run in prod
  - name: bounded-sessions
    groups: ["dex:agents"]
    resources: ["pods/exec"]
    expression: 'request.stream.command.exists(c, c.contains("bounded-session"))'
    action: allow
    session: {maxDuration: 3s, idleTimeout: 1s}
  - name: captured-bot-forwards
    users: ["system:serviceaccount:dev:ci-bot"]
    resources: ["pods/portforward"]
    action: allow
    session: {captureForwards: true}
  - name: discovery
    nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]
    verbs: ["get"]
    action: allow
  - name: agents-and-bots
    groups: ["dex:agents", "system:serviceaccounts:dev"]
    action: allow
    auditLevel: Request
  - name: platform-admins
    groups: ["dex:platform-admins"]
    action: allow
`

// gateway starts (once per test binary) a kubegate node in this process.
func gateway(t *testing.T) *gatewayEnv {
	t.Helper()
	gwOnce.Do(func() { gwEnv, gwErr = startGateway(testenv.Get(t)) })
	if gwErr != nil {
		t.Fatalf("starting kubegate: %v", gwErr)
	}
	return gwEnv
}

func startGateway(env *testenv.Env) (*gatewayEnv, error) {
	logFile, err := os.Create(filepath.Join(env.Dir, "logs", "kubegate.log"))
	if err != nil {
		return nil, err
	}
	env.NoteOutput(logFile.Name()) // grepped for secrets at the end of the suite
	st, err := stack.Start(context.Background(), env, stack.Options{
		Dir: filepath.Join(env.Dir, "kubegate"),
		// A short body read timeout lets the attack matrix wait for it.
		Policy: testPolicy + "limits:\n  bodyReadTimeout: 5s\n",
		Log:    slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return nil, err
	}
	return &gatewayEnv{
		url: st.URL, adminURL: st.AdminURL, auditPath: st.AuditPath, configPath: st.ConfigPath,
		agentKubeconfig: st.Kubeconfigs["agent"], adminKubeconfig: st.Kubeconfigs["admin"], botKubeconfig: st.Kubeconfigs["ci-bot"],
	}, nil
}
