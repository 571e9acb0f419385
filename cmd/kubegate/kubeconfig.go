package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/kubegate/kubegate/agentcred"
)

// runKubeconfig writes a kubeconfig for an agent: the gateway as the
// cluster, `kubegate token` with the given source as the credential plugin.
func runKubeconfig(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	var o agentcred.KubeconfigOptions
	fs.StringVar(&o.Server, "server", "", "kubegate's https `URL` (required)")
	fs.StringVar(&o.CAFile, "ca", "", "PEM `file` of the CAs that sign kubegate's certificate, embedded in the kubeconfig (required)")
	fs.StringVar(&o.Name, "name", agentcred.DefaultName, "`name` of the kubeconfig's cluster, user and context")
	fs.StringVar(&o.Namespace, "namespace", "", "the context's `namespace`")
	fs.StringVar(&o.Command, "command", "", "credential plugin `path` (default: this kubegate binary)")
	out := fs.String("out", "", "write the kubeconfig to this `file`, mode 0600 (required)")
	var src agentcred.SourceConfig
	src.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kubeconfig: unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return errors.New("kubeconfig: --out is required")
	}
	if o.Command == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("kubeconfig: finding this binary for the plugin command (pass --command): %w", err)
		}
		o.Command = exe
	}
	var err error
	if o.Args, err = src.TokenArgs(); err != nil {
		return err
	}
	return agentcred.WriteKubeconfig(*out, o)
}
