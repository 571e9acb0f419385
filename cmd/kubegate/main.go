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
  sessions [--user U] ...   list recorded exec/attach sessions; --live: live sessions; kill ID: end one
  replay ID|FILE            play a session recording; --api: an agent's API calls; --against: re-issue them
  audit verify|search ...   check the audit events' hash chains and recordings, or search the events
  request create ...        ask for time-bound access (a grant)
  requests [--pending]      list access requests: held calls and requests for grants
  approve ID | deny ID      decide on an access request
  grants | revoke ID        list grants, or end one early
  mask test -f FILE         show what a client receives for an object, with the masking rules applied
  cluster status|add|remove show or change the Raft membership of a kubegate cluster
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
	case "replay":
		err = runReplay(ctx, args)
	case "audit":
		err = runAudit(ctx, args)
	case "request":
		err = runRequest(ctx, args, os.Stdout)
	case "requests":
		err = runRequests(ctx, args, os.Stdout)
	case "approve", "deny":
		err = runDecide(ctx, os.Args[1], args, os.Stdout)
	case "grants":
		err = runGrants(ctx, args, os.Stdout)
	case "revoke":
		err = runRevoke(ctx, args, os.Stdout)
	case "mask":
		err = runMask(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	case "cluster":
		err = runCluster(ctx, args, os.Stdout)
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
