package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kubegate/kubegate/internal/testenv"
)

// runDemo starts the harness cluster and keeps it up until ctx ends.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", ".demo", "directory for the cluster's files (PKI, kubeconfigs, logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	env, err := testenv.Start(startCtx, testenv.Options{Dir: abs, Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer env.Stop()
	agentToken := filepath.Join(abs, "agent.token")
	tok, err := env.Dex.Token(ctx, "agent")
	if err != nil {
		return err
	}
	if err := os.WriteFile(agentToken, []byte(tok), 0o600); err != nil {
		return err
	}
	fmt.Printf(`
kubegate demo cluster is up (kube-apiserver %s, Dex %s).

  admin kubeconfig (direct to the apiserver): %s
  a Dex ID token for user "agent":           %s

Try:
  export KUBECONFIG=%s
  kubectl get pods -A
  kubectl -n dev exec toolbox -- sh -c 'echo hello from $(hostname); exit 3'; echo "exit code $?"
  kubectl -n dev attach -i toolbox      # type a line, see "got: <line>"

Press Ctrl-C to stop.
`, env.APIServerURL, env.Dex.Issuer, env.AdminKubeconfig, agentToken, env.AdminKubeconfig)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping the demo cluster")
	return nil
}
