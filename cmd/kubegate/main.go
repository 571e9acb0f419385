package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: kubegate <command> [flags]

commands:
  serve --config FILE       run the gateway
  policy check ...          show what the policy decides for a request
  kubeconfig ...            write a kubeconfig for an agent that authenticates with 'kubegate token'
  token ...                 exec credential plugin: print a short-lived token for kubectl
  sessions [kill ID]        list live exec/attach/port-forward sessions, or end one
  demo run|up|down          a local cluster with kubegate in front of it
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		err = runServe(ctx, args)
	case "policy":
		err = runPolicy(ctx, args)
	case "kubeconfig":
		err = runKubeconfig(ctx, args)
	case "token":
		err = runToken(ctx, args)
	case "sessions":
		err = runSessions(ctx, args)
	case "demo":
		err = runDemo(ctx, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		err = fmt.Errorf("unknown command %q\n\n%s", os.Args[1], usage)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kubegate:", err)
		os.Exit(1)
	}
}
