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
	// Per-node settings, so that one configuration file serves every node
	// of a cluster (a StatefulSet passes these with the pod's name).
	nodeID := fs.String("node-id", "", "this node's id (overrides cluster.nodeID)")
	bind := fs.String("raft-bind", "", "peer listen address for Raft and node-to-node calls (overrides cluster.bind)")
	advertise := fs.String("raft-advertise", "", "the peer address other nodes dial (overrides cluster.advertise)")
	bootstrap := fs.Bool("bootstrap", false, "start a new cluster of this node alone, if it has no state yet")
	join := fs.String("join", "", "comma-separated peer addresses to join, if this node has no state yet (overrides cluster.join)")
	peerCert := fs.String("peer-cert", "", "this node's peer certificate (overrides cluster.tls.certFile)")
	peerKey := fs.String("peer-key", "", "this node's peer key (overrides cluster.tls.keyFile)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	override := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	if *configPath == "" {
		return errors.New("serve: --config is required")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := app.LoadConfigWith(*configPath, func(c *app.Config) {
		cl := &c.Cluster
		override(&cl.NodeID, *nodeID)
		override(&cl.Bind, *bind)
		override(&cl.Advertise, *advertise)
		override(&cl.TLS.CertFile, *peerCert)
		override(&cl.TLS.KeyFile, *peerKey)
		if *bootstrap {
			cl.Bootstrap = true
		}
		if *join != "" {
			cl.Join = splitList(*join)
		}
	})
	if err != nil {
		return err
	}
	node, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	return node.Run(ctx)
}
