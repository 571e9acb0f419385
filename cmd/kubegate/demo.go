package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubegate/kubegate/agentcred"
	"github.com/kubegate/kubegate/internal/stack"
	"github.com/kubegate/kubegate/internal/testenv"
)

const demoUsage = `usage: kubegate demo run|up|down [--dir DIR]

  run    start the demo in the foreground until Ctrl-C (what 'make demo' does)
  up     start the demo in the background and return once it is ready
  down   stop a demo started with 'up'
`

// runDemo starts or stops the demo: a local cluster (etcd, kube-apiserver,
// test kubelet, Dex) with a kubegate node in front of it.
func runDemo(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(demoUsage)
	}
	fs := flag.NewFlagSet("demo "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".demo", "directory for the demo's files: kubeconfigs, kubegate.yaml, audit events, cluster logs")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "run":
		return demoRun(ctx, abs)
	case "up":
		return demoUp(ctx, abs)
	case "down":
		return demoDown(abs)
	}
	return errors.New(demoUsage)
}

func demoRun(ctx context.Context, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 20*time.Minute) // a cold build of the pinned tools takes minutes
	defer cancel()
	env, err := testenv.Start(startCtx, testenv.Options{Dir: filepath.Join(dir, "cluster"), Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer env.Stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "kubegate.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	st, err := stack.Start(ctx, env, stack.Options{
		Dir:         dir,
		Policy:      stack.DemoPolicy,
		Log:         slog.New(slog.NewTextHandler(logFile, nil)),
		Credentials: demoCredentials(env, dir, self),
		Console:     true,
	})
	if err != nil {
		return err
	}
	clusterAdmin := filepath.Join(dir, "cluster-admin.kubeconfig")
	if b, err := os.ReadFile(env.AdminKubeconfig); err != nil {
		return err
	} else if err := os.WriteFile(clusterAdmin, b, 0o600); err != nil {
		return err
	}
	binDir, err := demoBin(dir, self)
	if err != nil {
		return err
	}
	info := demoInfo(dir, binDir, st, clusterAdmin)
	if err := os.WriteFile(filepath.Join(dir, "info.txt"), []byte(info), 0o644); err != nil {
		return err
	}
	envFile := fmt.Sprintf("KUBEGATE_URL=%s\nKUBEGATE_ADMIN_URL=%s\nKUBEGATE_CONFIG=%s\nKUBEGATE_AUDIT=%s\nKUBECONFIG=%s\n",
		st.URL, st.AdminURL, st.ConfigPath, st.AuditPath, st.Kubeconfigs["agent"])
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(envFile), 0o644); err != nil {
		return err
	}
	fmt.Print(info)
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping the demo")
	return nil
}

// demoBin links kubegate into DIR/bin, also as kubectl-kubegate so that
// kubectl finds it as a plugin.
func demoBin(dir, self string) (string, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"kubegate", "kubectl-kubegate"} {
		link := filepath.Join(bin, name)
		_ = os.Remove(link)
		if err := os.Symlink(self, link); err != nil {
			return "", err
		}
	}
	return bin, nil
}

// demoCredentials writes kubeconfigs whose user runs `kubegate token` as an
// exec credential plugin: Dex users log in with the password grant (the
// password sits in a 0600 file, never in the kubeconfig), and ci-bot reads a
// ServiceAccount token file as a projected volume would provide it.
func demoCredentials(env *testenv.Env, dir, self string) func(ctx context.Context, user, server, path string) error {
	return func(ctx context.Context, user, server, path string) error {
		secrets := filepath.Join(dir, "secrets")
		if err := os.MkdirAll(secrets, 0o700); err != nil {
			return err
		}
		var args []string
		if user == "ci-bot" {
			tok, err := env.ServiceAccountToken(ctx, "dev", "ci-bot", "kubegate", 24*time.Hour)
			if err != nil {
				return err
			}
			tokenFile := filepath.Join(secrets, "ci-bot.token")
			if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
				return err
			}
			args = []string{"token", "--token-file", tokenFile}
		} else {
			u := env.Dex.Users[user]
			passwordFile := filepath.Join(secrets, user+".password")
			secretFile := filepath.Join(secrets, "dex-client.secret")
			if err := os.WriteFile(passwordFile, []byte(u.Password), 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(secretFile, []byte(env.Dex.ClientSecret), 0o600); err != nil {
				return err
			}
			args = []string{"token", "--oidc-issuer", env.Dex.Issuer, "--oidc-ca", env.CAFile, "--client-id", env.Dex.ClientID,
				"--client-secret-file", secretFile, "--username", u.Email, "--password-file", passwordFile,
				"--cache-dir", filepath.Join(dir, "token-cache")}
		}
		return agentcred.WriteKubeconfig(path, agentcred.KubeconfigOptions{
			Server: server, CAFile: env.CAFile, Name: "kubegate-demo-" + user, Namespace: "dev", Command: self, Args: args,
		})
	}
}

func demoInfo(dir, binDir string, st *stack.Stack, clusterAdmin string) string {
	return fmt.Sprintf(`
kubegate demo is up.

  kubegate         %s   (admin: %s/metrics)
  web console      %s
                   sign in as approver@kubegate.test, password in %s/secrets/approver.password
  config           %s
  audit events     %s
  kubeconfigs      %s/{agent,approver,admin,ci-bot}.kubeconfig (through kubegate)
                   %s (direct to the apiserver, for setup only)

Try, as the agent:
  export KUBECONFIG=%s
  kubectl get pods -n dev                      # allowed, and audited
  kubectl run priv --image=busybox --privileged -n dev   # denied: privileged workloads
  kubectl exec -it toolbox -n dev -- sh        # relayed and recorded
  kubectl create secret generic db -n dev --from-literal=password=hunter2
  kubectl get secret db -n dev -o yaml         # data masked: secret values never leave kubegate
  kubectl delete pod toolbox -n prod           # held until a person approves it

Then, in a second terminal, as the approver:
  export KUBECONFIG=%s/approver.kubeconfig PATH=%s:$PATH
  kubegate requests --pending                  # the held delete, with its id
  kubegate approve ID --reason "ok"            # releases it (or: kubegate deny ID --reason "...")
  kubectl kubegate requests                    # the same CLI as a kubectl plugin

Time-bound access, asked for by the agent and approved by the approver:
  kubegate request create --verbs delete --resources pods --namespaces prod --duration 10m --reason "cleanup"

Replay what happened:
  kubegate sessions --dir %s/data/audit/recordings          # recorded exec/attach sessions
  kubegate replay --dir %s/data/audit/recordings ID         # plays one (space pauses, . steps, q quits)
  kubegate replay --api --audit-file %s CREDENTIAL          # an agent's API calls as a timeline
  tail -n 3 %s | jq .

Stop it with Ctrl-C (or 'kubegate demo down --dir %s' after 'demo up').
`, st.URL, st.AdminURL, st.ConsoleURL, dir, st.ConfigPath, st.AuditPath, dir, clusterAdmin, st.Kubeconfigs["agent"], dir, binDir, dir, dir, st.AuditPath, st.AuditPath, dir)
}

// demoUp starts `kubegate demo run` in the background, in its own session,
// and returns once it reports ready.
func demoUp(ctx context.Context, dir string) error {
	if pid, err := readPID(dir); err == nil && syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("a demo is already running in %s (pid %d); stop it with 'kubegate demo down --dir %s'", dir, pid, dir)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logPath := dir + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "demo", "run", "--dir", dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pidFile := dir + ".pid"
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "starting the demo in the background (log: %s)\n", logPath)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the demo stopped while starting (%v):\n%s", err, tail(b, 3000))
		case <-ctx.Done():
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			return ctx.Err()
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
				info, err := os.ReadFile(filepath.Join(dir, "info.txt"))
				if err != nil {
					return err
				}
				fmt.Print(string(info))
				return nil
			}
		}
	}
}

// demoDown stops a demo started by demoUp and waits until it has exited.
func demoDown(dir string) error {
	pid, err := readPID(dir)
	if err != nil {
		return fmt.Errorf("no demo started with 'demo up' in %s: %w", dir, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.Remove(dir + ".pid")
	_ = os.Remove(filepath.Join(dir, "ready"))
	fmt.Fprintln(os.Stderr, "demo stopped")
	return nil
}

func readPID(dir string) (int, error) {
	b, err := os.ReadFile(dir + ".pid")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
