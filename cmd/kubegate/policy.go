package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubegate/kubegate/internal/app"
	"github.com/kubegate/kubegate/k8swire"
	"github.com/kubegate/kubegate/policy"
)

const policyUsage = `usage: kubegate policy check --config FILE --user U [--groups G1,G2] VERB RESOURCE [NAME] [-n NS] [-f OBJECT.yaml]

RESOURCE is written as kubectl does: pods, pods/exec, deployments.apps, cronjobs.batch/status.
For exec, pass the command after --: kubegate policy check ... create pods/exec toolbox -n dev -- cat /etc/os-release
`

// runPolicy answers `kubegate policy check`: it prints the decision the
// configured policy makes for a described request, and the rule that made it.
func runPolicy(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New(policyUsage)
	}
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	configPath := fs.String("config", "", "kubegate configuration file")
	user := fs.String("user", "", "username of the caller")
	groups := fs.String("groups", "", "comma-separated groups of the caller")
	ns := fs.String("n", "", "namespace")
	file := fs.String("f", "", "object file (YAML or JSON) sent with create/update/patch")
	tty := fs.Bool("tty", false, "exec/attach with a terminal")
	stdin := fs.Bool("stdin", false, "exec/attach with stdin")
	container := fs.String("container", "", "exec/attach container")
	pos, command, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if *configPath == "" || *user == "" || len(pos) < 2 || len(pos) > 3 {
		return errors.New(policyUsage)
	}
	cfg, err := app.LoadPolicyConfig(*configPath)
	if err != nil {
		return err
	}
	engine, err := policy.New(*cfg)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	req := k8swire.Request{Verb: pos[0], Namespace: *ns, IsResourceRequest: true}
	req.Resource, req.Subresource, req.APIGroup = splitResource(pos[1])
	if len(pos) == 3 {
		req.Name = pos[2]
	}
	if req.Subresource == "exec" || req.Subresource == "attach" || req.Subresource == "portforward" {
		req.Stream = &k8swire.Stream{Container: *container, Command: command, Stdin: *stdin, TTY: *tty, Stdout: true, Stderr: !*tty}
	}
	in := policy.Input{Subject: policy.Subject{User: *user}, Request: req}
	if *groups != "" {
		in.Subject.Groups = strings.Split(*groups, ",")
	}
	if *file != "" {
		if in.Body, err = os.ReadFile(*file); err != nil {
			return err
		}
		in.ContentType = "application/yaml"
		if strings.EqualFold(filepath.Ext(*file), ".json") {
			in.ContentType = "application/json"
		}
	}
	fmt.Println(policy.Check(engine, in))
	return nil
}

// parseInterleaved parses flags that may follow positional arguments, as
// kubectl users write them; everything after "--" is the exec command.
func parseInterleaved(fs *flag.FlagSet, args []string) (pos, command []string, err error) {
	for i, a := range args {
		if a == "--" {
			command = args[i+1:]
			args = args[:i]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, command, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// splitResource turns kubectl's "deployments.apps/status" into resource,
// subresource and group.
func splitResource(s string) (resource, subresource, group string) {
	resource, subresource, _ = strings.Cut(s, "/")
	resource, group, _ = strings.Cut(resource, ".")
	return resource, subresource, group
}
