package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/internal/app"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const auditUsage = `usage: kubegate audit verify [--from DIR|FILE|s3://BUCKET/PREFIX]... [--recordings DIR] [-o json]
       kubegate audit search [--from DIR|FILE|s3://BUCKET/PREFIX]... [--user U] [--verb V] [--resource R]
                             [--namespace N] [--since T] [--until T] [-o json]

verify checks every node's chain of audit events (kubegate.dev/audit-id, kubegate.dev/audit-prev)
and the sha256 of every recording a session.end event names. It reports each missing, modified,
reordered or conflicting event and each altered or missing recording, naming the event and the
file:line or key:line it was found at, and exits 1 if there is any. Exact copies of an event (a
batch an S3 sink retried) are dropped.

search prints the events that match every filter given, as a table, or with -o json as the lines
stored. --resource is resource[.group][/subresource]: pods, pods/exec, pods/* (any subresource),
deployments.apps. --since and --until take RFC3339 or a duration back from now (2h), and compare
with each event's stageTimestamp.

--from defaults to the audit file of the gateway configuration (--config FILE, default
$KUBEGATE_CONFIG), else $KUBEGATE_AUDIT_FILE. A directory is read as a node's audit.log and its
rotated files, oldest first; a file with its rotated files. An s3:// URL reads what an S3 sink
stored there; --s3-endpoint, --s3-region, --s3-path-style and --s3-ca-file say how to reach it, and
the credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (else the AWS SDK's default
chain). Recordings are read where the events say, or with --recordings DIR from DIR/<date>/<file>
(a copy of a node's recordings directory); from an S3 store, under recordings/<date>/. --from
may be repeated to read several stores as one: verify then also reports an event whose copies
differ (a local log against its bucket, say), and search shows each event once.
`

// errVerifyFailed is verify finding something wrong; the report says what.
var errVerifyFailed = errors.New("audit verify: the events do not verify")

// runAudit verifies or searches stored audit events.
func runAudit(ctx context.Context, args []string) error {
	return auditCommand(ctx, args, os.Stdout, os.Stderr)
}

// auditCommand is runAudit writing to stdout and stderr.
func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "search") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, auditUsage)
			return nil
		}
		return errors.New(auditUsage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet("audit "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	var from auditFrom
	from.register(fs)
	output := fs.String("o", "", "output format: json (default: text)")
	var filter audit.SearchFilter
	var since, until string
	if cmd == "search" {
		fs.StringVar(&filter.User, "user", "", "events of this `username`")
		fs.StringVar(&filter.Verb, "verb", "", "events of this `verb`")
		fs.StringVar(&filter.Resource, "resource", "", "events on this `resource[/subresource]`")
		fs.StringVar(&filter.Namespace, "namespace", "", "events in this `namespace`")
		fs.StringVar(&filter.Namespace, "n", "", "short for --namespace")
		fs.StringVar(&since, "since", "", "events from this `time` on")
		fs.StringVar(&until, "until", "", "events before this `time`")
	}
	pos, _, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("audit %s: unexpected argument %q\n\n%s", cmd, pos[0], auditUsage)
	}
	if *output != "" && *output != "json" {
		return fmt.Errorf("audit %s: -o %s: want json", cmd, *output)
	}
	now := time.Now()
	for _, b := range []struct {
		flag, value string
		t           *time.Time
	}{{"since", since, &filter.Since}, {"until", until, &filter.Until}} {
		if b.value == "" {
			continue
		}
		if *b.t, err = audit.ParseSearchTime(b.value, now); err != nil {
			return fmt.Errorf("audit search: --%s: %w", b.flag, err)
		}
	}
	if err := filter.Validate(); err != nil {
		return fmt.Errorf("audit search: %w", err)
	}
	src, desc, err := from.source(ctx)
	if err != nil {
		return err
	}
	if cmd == "verify" {
		return verifyAudit(ctx, stdout, src, desc, *output == "json")
	}
	return searchAudit(ctx, stdout, stderr, src, filter, *output == "json")
}

// auditFrom is where the audit commands read events from.
type auditFrom struct {
	from               []string
	recordings, config string
	s3                 audit.S3Config
}

func (a *auditFrom) register(fs *flag.FlagSet) {
	fs.Func("from", "read events from this audit `DIR, FILE or s3://BUCKET/PREFIX`; repeat it to read several as one, e.g. a node's log and its bucket (default: the configuration's audit file)", func(v string) error {
		a.from = append(a.from, v)
		return nil
	})
	fs.StringVar(&a.config, "config", "", "kubegate configuration `file` naming the audit file (default $KUBEGATE_CONFIG)")
	fs.StringVar(&a.recordings, "recordings", "", "read recordings from this `directory` (DIR/<date>/<file>) instead of where the events say")
	fs.StringVar(&a.s3.Endpoint, "s3-endpoint", "", "`URL` of an S3-compatible server (default: AWS)")
	fs.StringVar(&a.s3.Region, "s3-region", envOr("AWS_REGION", ""), "S3 `region` (default $AWS_REGION, else us-east-1)")
	fs.BoolVar(&a.s3.PathStyle, "s3-path-style", false, "address the bucket in the path, as most self-hosted servers need")
	fs.StringVar(&a.s3.CAFile, "s3-ca-file", "", "PEM `file` of CAs trusted for the S3 endpoint, besides the system's")
}

// source opens the sources the flags name, as one, and describes them.
func (a *auditFrom) source(ctx context.Context) (audit.Source, string, error) {
	froms := a.from
	if len(froms) == 0 {
		paths := auditPaths{config: a.config}
		file, err := paths.find("", "KUBEGATE_AUDIT_FILE", func(c *app.Config) string { return c.Audit.File.Path })
		if err != nil {
			return nil, "", err
		}
		if file == "" {
			return nil, "", errors.New("no events to read: pass --from or --config, or set KUBEGATE_CONFIG or KUBEGATE_AUDIT_FILE")
		}
		froms = []string{file}
	}
	if a.recordings != "" && !slices.ContainsFunc(froms, func(f string) bool { return !strings.HasPrefix(f, "s3://") }) {
		return nil, "", errors.New("--recordings reads local recordings; with an s3:// source they are read from the store")
	}
	var srcs audit.Sources
	var descs []string
	for _, from := range froms {
		src, desc, err := a.one(ctx, from)
		if err != nil {
			return nil, "", err
		}
		srcs, descs = append(srcs, src), append(descs, desc)
	}
	if len(srcs) == 1 {
		return srcs[0], descs[0], nil
	}
	return srcs, strings.Join(descs, " + "), nil
}

// one opens one source: a local directory or file, or an s3:// store.
func (a *auditFrom) one(ctx context.Context, from string) (audit.Source, string, error) {
	if !strings.HasPrefix(from, "s3://") {
		src, err := audit.NewFileSource(from, a.recordings)
		if err != nil {
			return nil, "", err
		}
		files := src.Files()
		desc := files[len(files)-1]
		if n := len(files) - 1; n > 0 {
			desc += fmt.Sprintf(" and %s before it", plural(n, "rotated file"))
		}
		return src, desc, nil
	}
	cfg := a.s3
	var err error
	if cfg.Bucket, cfg.Prefix, err = audit.ParseS3URL(from); err != nil {
		return nil, "", err
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	store, err := audit.NewS3Store(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	return audit.NewStoreSource(store), cfg.String(), nil
}

// verifyAudit verifies src and prints the report: a table, or JSON.
func verifyAudit(ctx context.Context, stdout io.Writer, src audit.Source, desc string, asJSON bool) error {
	r, err := audit.VerifyChain(ctx, src)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if err := writeReport(stdout, r, desc); err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("%w: %s", errVerifyFailed, plural(len(r.Problems), "problem"))
	}
	return nil
}

// writeReport writes a verify report for people.
func writeReport(w io.Writer, r *audit.Report, desc string) error {
	fmt.Fprintf(w, "read %s from %s\n", plural(r.Lines, "line"), desc)
	if len(r.Nodes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tFIRST\tLAST\tEVENTS\tHEAD")
		for _, n := range r.Nodes {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", n.Node, n.First, n.Last, n.Events, n.Head)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	events := 0
	for _, n := range r.Nodes {
		events += n.Events
	}
	summary := fmt.Sprintf("%s of %s, %s checked, %s dropped",
		plural(events, "event"), plural(len(r.Nodes), "node"), plural(r.Recordings, "recording"), plural(r.Duplicates, "duplicate"))
	if r.OK() {
		_, err := fmt.Fprintf(w, "verified: %s\n", summary)
		return err
	}
	fmt.Fprintf(w, "%s:\n", plural(len(r.Problems), "problem"))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	_, err := fmt.Fprintf(w, "NOT VERIFIED: %s\n", summary)
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// searchAudit prints the events of src that f selects: a table, or the
// stored lines.
func searchAudit(ctx context.Context, stdout, stderr io.Writer, src audit.Source, f audit.SearchFilter, asJSON bool) error {
	var tw *tabwriter.Writer
	if !asJSON {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tUSER\tVERB\tRESOURCE\tNAMESPACE/NAME\tCODE\tDECISION")
	}
	st, err := audit.Search(ctx, src, f, func(h audit.SearchHit) error {
		if asJSON {
			_, err := stdout.Write(append(h.Line.Bytes, '\n'))
			return err
		}
		_, err := fmt.Fprintln(tw, searchRow(h.Event))
		return err
	})
	if tw != nil {
		if ferr := tw.Flush(); err == nil {
			err = ferr
		}
	}
	if err != nil {
		return fmt.Errorf("audit search: %w", err)
	}
	if n := len(st.Unreadable); n > 0 {
		more := ""
		if n > 3 {
			more = ", …"
		}
		fmt.Fprintf(stderr, "kubegate: %s could not be read as events: %s%s\n", plural(n, "line"), strings.Join(st.Unreadable[:min(n, 3)], ", "), more)
	}
	return nil
}

// searchRow is one event's row of the search table.
func searchRow(ev *auditv1.Event) string {
	at := "-"
	if t := audit.EventTime(ev); !t.IsZero() {
		at = t.UTC().Format(time.RFC3339)
	}
	resource, object := "-", "-"
	if ref := ev.ObjectRef; ref != nil {
		resource = ref.Resource
		if ref.APIGroup != "" {
			resource += "." + ref.APIGroup
		}
		if ref.Subresource != "" {
			resource += "/" + ref.Subresource
		}
		switch {
		case ref.Namespace != "" && ref.Name != "":
			object = ref.Namespace + "/" + ref.Name
		case ref.Namespace != "":
			object = ref.Namespace + "/"
		case ref.Name != "":
			object = ref.Name
		}
	} else if u, err := url.Parse(ev.RequestURI); err == nil && u.Path != "" {
		resource = u.Path
	}
	code := "-"
	if ev.ResponseStatus != nil {
		code = strconv.Itoa(int(ev.ResponseStatus.Code))
	}
	return strings.Join([]string{at, orDash(ev.User.Username), orDash(ev.Verb), orDash(resource), object, code, orDash(ev.Annotations[audit.AnnotationDecision])}, "\t")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
