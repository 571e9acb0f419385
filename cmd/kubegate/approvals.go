package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubegate/kubegate/cluster"
	"github.com/kubegate/kubegate/gateway"
	"github.com/kubegate/kubegate/policy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const approvalsUsage = `usage:
  kubegate request create --verbs V[,V] --resources R[,R] [--api-groups G] [--namespaces N] [--names N] --duration D --reason TEXT
  kubegate requests [--pending] [--kind hold|grant] [-o json]
  kubegate approve ID [--reason TEXT]
  kubegate deny ID --reason TEXT
  kubegate grants [--all] [-o json]
  kubegate revoke GRANT-ID [--reason TEXT]

Every command finds the gateway and your credentials in the current kubeconfig
(--kubeconfig, $KUBECONFIG, ~/.kube/config; --context), as kubectl does. Installed
as kubectl-kubegate on the PATH, it also runs as 'kubectl kubegate ...'.
`

// apiClient talks to a gateway's approval API with the kubeconfig's
// credentials.
type apiClient struct {
	base   string
	client *http.Client
}

// apiFlags is an approvals command's flags, --kubeconfig and --context
// among them.
type apiFlags struct {
	*flag.FlagSet
	kubeconfig, kubeContext *string
}

func newAPIFlags(name string) apiFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return apiFlags{
		FlagSet:     fs,
		kubeconfig:  fs.String("kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)"),
		kubeContext: fs.String("context", "", "kubeconfig context (default the current one)"),
	}
}

// parse parses args, flags and positional arguments interleaved, and
// connects to the gateway the kubeconfig names.
func (f apiFlags) parse(args []string) ([]string, *apiClient, error) {
	pos, _, err := parseInterleaved(f.FlagSet, args)
	if err != nil {
		return nil, nil, err
	}
	c, err := newAPIClient(*f.kubeconfig, *f.kubeContext)
	return pos, c, err
}

func newAPIClient(kubeconfig, kubeContext string) (*apiClient, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig credentials: %w", err)
	}
	hc.Timeout = 30 * time.Second
	return &apiClient{base: strings.TrimRight(cfg.Host, "/") + strings.TrimSuffix(gateway.APIPrefix, "/"), client: hc}, nil
}

// call sends body (if any) as JSON and decodes the reply into out. A
// refusal is returned as the gateway's Status message.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the gateway: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the gateway's reply: %w", err)
	}
	if resp.StatusCode >= 300 {
		var st metav1.Status
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			return errors.New(st.Message)
		}
		return fmt.Errorf("the gateway answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the gateway's reply: %w", err)
	}
	return nil
}

// runRequest handles `kubegate request create`.
func runRequest(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New(approvalsUsage)
	}
	fs := newAPIFlags("request create")
	verbs := fs.String("verbs", "", "comma-separated verbs, e.g. get,delete")
	resources := fs.String("resources", "", "comma-separated resources, e.g. deployments,pods/exec")
	groups := fs.String("api-groups", "", "comma-separated API groups, \"core\" for the core group (default any)")
	namespaces := fs.String("namespaces", "", "comma-separated namespaces (default any)")
	names := fs.String("names", "", "comma-separated object names (default any)")
	duration := fs.Duration("duration", 0, "how long the grant lasts once approved, e.g. 30m")
	reason := fs.String("reason", "", "why you need the access (required)")
	_, c, err := fs.parse(args[1:])
	if err != nil {
		return err
	}
	spec := gateway.GrantRequestSpec{
		GrantScope: policy.GrantScope{
			Verbs: splitList(*verbs), Resources: splitList(*resources), APIGroups: apiGroups(splitList(*groups)),
			Namespaces: splitList(*namespaces), Names: splitList(*names),
		},
		Duration: policy.Duration(*duration),
		Reason:   *reason,
	}
	var v gateway.RequestView
	if err := c.call(ctx, http.MethodPost, "/requests", spec, &v); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "access request %s created: %s\nit waits for %d approval(s) by %s until %s\n",
		v.ID, v.Summary, v.ApprovalsRequired, strings.Join(v.ApproverGroups, ", "), v.ExpiresAt.Local().Format(time.DateTime))
	return nil
}

// runRequests lists access requests.
func runRequests(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newAPIFlags("requests")
	pending := fs.Bool("pending", false, "only requests waiting for a decision")
	kind := fs.String("kind", "", "hold or grant (default both)")
	output := fs.String("o", "", "json for the raw list")
	_, c, err := fs.parse(args)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *pending {
		q.Set("state", string(cluster.StatePending))
	}
	if *kind != "" {
		q.Set("kind", *kind)
	}
	path := "/requests"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var list gateway.RequestList
	if err := c.call(ctx, http.MethodGet, path, nil, &list); err != nil {
		return err
	}
	if *output == "json" {
		return json.NewEncoder(stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tREQUESTER\tAPPROVALS\tAGE\tWHAT")
	now := time.Now()
	for _, r := range list.Items {
		if *pending && r.State != cluster.StatePending {
			continue // pending on the node, but already past its expiry
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.Kind, r.State, r.Requester.User,
			len(r.Approvals), r.ApprovalsRequired, now.Sub(r.CreatedAt).Round(time.Second), r.Summary)
	}
	return tw.Flush()
}

// runDecide approves or denies an access request.
func runDecide(ctx context.Context, verb string, args []string, stdout io.Writer) error {
	fs := newAPIFlags(verb)
	reason := fs.String("reason", "", "why (required to deny)")
	pos, c, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: kubegate %s ID --reason TEXT", verb)
	}
	if verb == "deny" && strings.TrimSpace(*reason) == "" {
		return errors.New("kubegate deny needs --reason: the requester is shown it")
	}
	var v gateway.RequestView
	if err := c.call(ctx, http.MethodPost, "/requests/"+url.PathEscape(pos[0])+"/"+verb, gateway.DecisionSpec{Reason: *reason}, &v); err != nil {
		return err
	}
	switch v.State {
	case cluster.StateApproved, cluster.StateUsed:
		fmt.Fprintf(stdout, "access request %s approved: %s\n", v.ID, v.Summary)
		if v.GrantID != "" {
			fmt.Fprintf(stdout, "grant %s is active for %s\n", v.GrantID, v.Duration)
		}
	case cluster.StateDenied:
		fmt.Fprintf(stdout, "access request %s denied: %s\n", v.ID, v.Summary)
	default:
		fmt.Fprintf(stdout, "access request %s: your approval is recorded, %d of %d so far\n", v.ID, len(v.Approvals), v.ApprovalsRequired)
	}
	return nil
}

// runGrants lists grants.
func runGrants(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newAPIFlags("grants")
	all := fs.Bool("all", false, "everyone's grants (approvers only)")
	output := fs.String("o", "", "json for the raw list")
	_, c, err := fs.parse(args)
	if err != nil {
		return err
	}
	path := "/grants"
	if *all {
		path += "?all=true"
	}
	var list gateway.GrantList
	if err := c.call(ctx, http.MethodGet, path, nil, &list); err != nil {
		return err
	}
	if *output == "json" {
		return json.NewEncoder(stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOLDER\tSTATE\tUNTIL\tSCOPE")
	now := time.Now()
	for _, g := range list.Items {
		state := "active"
		switch {
		case g.Revoked != nil:
			state = "revoked"
		case !g.ActiveAt(now):
			state = "expired"
		}
		s := g.Scope
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s on %s in %s\n", g.ID, g.Holder.User, state, g.NotAfter.Local().Format(time.DateTime),
			strings.Join(s.Verbs, ","), strings.Join(s.Resources, ","), orAny(s.Namespaces))
	}
	return tw.Flush()
}

// runRevoke revokes a grant.
func runRevoke(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newAPIFlags("revoke")
	reason := fs.String("reason", "", "why")
	pos, c, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: kubegate revoke GRANT-ID [--reason TEXT]")
	}
	var g cluster.Grant
	if err := c.call(ctx, http.MethodPost, "/grants/"+url.PathEscape(pos[0])+"/revoke", gateway.DecisionSpec{Reason: *reason}, &g); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "grant %s revoked; its open sessions are being closed\n", g.ID)
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}

// apiGroups turns the word "core" into the core group's empty name.
func apiGroups(gs []string) []string {
	for i, g := range gs {
		if g == "core" {
			gs[i] = ""
		}
	}
	return gs
}

func orAny(ss []string) string {
	if len(ss) == 0 {
		return "any namespace"
	}
	return strings.Join(ss, ",")
}
