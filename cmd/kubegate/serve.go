package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"

	"github.com/kubegate/kubegate/internal/app"
)

// runServe runs a kubegate node from a configuration file until ctx ends.
func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "kubegate configuration file (YAML; see examples/kubegate.yaml)")
	debug := fs.Bool("debug", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("serve: --config is required")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := app.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	node, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	return node.Run(ctx)
}
