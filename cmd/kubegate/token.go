package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/kubegate/kubegate/agentcred"
)

// runToken prints an ExecCredential for one credential source: the exec
// credential plugin that kubeconfigs written by `kubegate kubeconfig` run.
func runToken(ctx context.Context, args []string) error {
	return tokenCommand(ctx, args, os.Stdout, os.Stderr, os.Getenv("KUBERNETES_EXEC_INFO"))
}

// tokenCommand is runToken with its outputs and environment passed in.
func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer, execInfo string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var src agentcred.SourceConfig
	src.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %q", fs.Args())
	}
	if err := agentcred.CheckExecInfo(execInfo); err != nil {
		return err
	}
	// client-go shows a plugin's stderr to the user.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	source, err := src.NewSource(log)
	if err != nil {
		return err
	}
	token, expiry, err := source.Token(ctx)
	if err != nil {
		return err
	}
	out, err := agentcred.ExecCredential(token, expiry)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
