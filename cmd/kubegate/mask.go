package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kubegate/kubegate/internal/app"
	"github.com/kubegate/kubegate/k8swire"
	"sigs.k8s.io/yaml"
)

const maskUsage = `usage: kubegate mask test -f FILE|- [--config FILE] [--resource R] [--api-group G]

Shows what a client of kubegate would receive for an object: FILE is JSON or YAML,
as 'kubectl get -o yaml' prints it. The rules are the configuration's masking section
(--config, default $KUBEGATE_CONFIG; without one, the built-in rules and patterns).
--resource defaults to the object's kind, lower-cased, plus "s" (secrets, configmaps, pods).
`

// runMask handles `kubegate mask test`.
func runMask(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		return errors.New(maskUsage)
	}
	fs := flag.NewFlagSet("mask test", flag.ContinueOnError)
	file := fs.String("f", "", "the object, JSON or YAML; - reads stdin")
	configPath := fs.String("config", os.Getenv("KUBEGATE_CONFIG"), "kubegate configuration whose masking section applies")
	resource := fs.String("resource", "", "the object's resource (plural)")
	group := fs.String("api-group", "", "the object's API group (default: from its apiVersion)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return errors.New(maskUsage)
	}
	var mc app.MaskingConfig
	if *configPath != "" {
		cfg, err := app.LoadConfig(*configPath)
		if err != nil {
			return err
		}
		mc = cfg.Masking
	}
	conf, ok := mc.MaskConfig()
	if !ok {
		return errors.New("masking is disabled in this configuration: clients receive objects unchanged")
	}
	m, err := k8swire.NewMasker(conf)
	if err != nil {
		return err
	}
	var raw []byte
	if *file == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(*file)
	}
	if err != nil {
		return err
	}
	body, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s is neither JSON nor YAML: %w", *file, err)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	req := k8swire.Request{Verb: "get", IsResourceRequest: true, Resource: *resource, APIGroup: *group,
		Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name}
	if req.Resource == "" {
		kind := strings.TrimSuffix(meta.Kind, "List")
		req.Resource = strings.ToLower(kind) + "s"
		if meta.Kind != kind {
			req.Name = "" // a list
		}
	}
	if req.APIGroup == "" {
		if g, _, ok := strings.Cut(meta.APIVersion, "/"); ok {
			req.APIGroup = g
		}
	}
	masked, changed, err := m.MaskBody(&req, "application/json", body)
	if err != nil {
		return fmt.Errorf("a client would get an error instead of this object: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, masked, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(stderr, "masked: values above marked %q were hidden (resource %s)\n", k8swire.MaskMarker, req.Resource)
	} else {
		fmt.Fprintf(stderr, "nothing masked (resource %s)\n", req.Resource)
	}
	return nil
}
