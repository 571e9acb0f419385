package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/internal/app"
	"golang.org/x/term"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/tools/clientcmd"
)

const replayUsage = `usage: kubegate replay [--dir DIR] [--speed N] [--idle-limit D] ID|FILE
       kubegate replay --api [--audit-file PATH] ID|FROM..TO
       kubegate replay --against KUBECONFIG [--context C] [--dry-run=server] [--namespace-map FROM=TO]... [--audit-file PATH] ID|FROM..TO

The first form plays an exec or attach recording in the terminal: ID is a session id (or a
unique prefix of one), FILE a .cast file. Keys: space pauses and resumes, '.' steps while
paused, '+' and '-' double and halve the speed, 'q' quits.

--api prints the API calls of an agent session as a timeline; --against re-issues its
create, update, patch and delete calls against another cluster, in order. The session is a
credential id (sha256:HEX, or a prefix of the hex), an audit-id range FROM..TO (in file
order), or --user U [--since T].

--dir defaults to $KUBEGATE_RECORDINGS and --audit-file to $KUBEGATE_AUDIT_FILE; the gateway
configuration (--config FILE, default $KUBEGATE_CONFIG) gives both otherwise. --since takes
RFC3339 or a duration back from now (2h).
`

// replayIO is what the replay command reads and writes.
type replayIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	clock          audit.PlayerClock // nil means the real clock
}

// runReplay plays a session recording, prints an agent session's API
// calls, or re-issues them against another cluster.
func runReplay(ctx context.Context, args []string) error {
	return replayCommand(ctx, args, replayIO{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
}

// replayCommand is runReplay with its terminal passed in.
func replayCommand(ctx context.Context, args []string, rio replayIO) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(rio.stderr)
	fs.Usage = func() { fmt.Fprint(rio.stderr, replayUsage) }
	var paths auditPaths
	paths.register(fs)
	speed := fs.Float64("speed", 1, "playback speed factor")
	idle := fs.Duration("idle-limit", 0, "cap every pause in the playback at this `duration` (0: none)")
	api := fs.Bool("api", false, "print the session's API calls")
	against := fs.String("against", "", "re-issue the session's mutating calls against the cluster of this `kubeconfig`")
	kubeContext := fs.String("context", "", "kubeconfig `context` for --against")
	dryRun := fs.String("dry-run", "none", "server: re-issue as server-side dry runs")
	nsMap := map[string]string{}
	fs.Func("namespace-map", "re-issue calls of namespace `FROM=TO` in TO (repeatable, or comma-separated)", func(s string) error {
		for _, pair := range strings.Split(s, ",") {
			from, to, ok := strings.Cut(pair, "=")
			if !ok || from == "" || to == "" {
				return fmt.Errorf("%q: want FROM=TO", pair)
			}
			nsMap[from] = to
		}
		return nil
	})
	user := fs.String("user", "", "select the session by `username`")
	since := fs.String("since", "", "with --user: calls from this `time` on")
	pos, _, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *api && *against != "" {
		return errors.New("replay: --api and --against do not go together")
	}
	if !*api && *against == "" {
		if len(pos) != 1 {
			return errors.New(replayUsage)
		}
		dir, err := paths.recordingsDir(!strings.HasSuffix(pos[0], ".cast"))
		if err != nil {
			return err
		}
		path, err := audit.FindRecording(dir, pos[0])
		if err != nil {
			return err
		}
		return playRecording(ctx, rio, path, audit.PlayerConfig{Speed: *speed, IdleLimit: *idle, Clock: rio.clock})
	}

	sel, err := sessionSelector(pos, *user, *since, time.Now())
	if err != nil {
		return err
	}
	auditFile, err := paths.auditFile()
	if err != nil {
		return err
	}
	events, err := audit.SelectSession(auditFile, sel)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return fmt.Errorf("replay: no calls in %s match", auditFile)
	}
	if *api {
		return audit.WriteTimeline(rio.stdout, events)
	}
	if *dryRun != "none" && *dryRun != "server" {
		return fmt.Errorf("replay: --dry-run=%s: want server or none", *dryRun)
	}
	return reissue(ctx, rio, events, *against, *kubeContext, audit.ReissueOptions{DryRun: *dryRun == "server", NamespaceMap: nsMap})
}

// sessionSelector reads the session argument and --user/--since.
func sessionSelector(pos []string, user, since string, now time.Time) (audit.SessionSelector, error) {
	var sel audit.SessionSelector
	switch {
	case len(pos) > 1:
		return sel, errors.New(replayUsage)
	case len(pos) == 1:
		var err error
		if sel, err = audit.ParseSessionSelector(pos[0]); err != nil {
			return sel, err
		}
	case user == "":
		return sel, errors.New("replay: give a credential id, an audit-id range FROM..TO, or --user")
	}
	sel.User = user
	if since != "" {
		t, err := parseSince(since, now)
		if err != nil {
			return sel, err
		}
		sel.Since = t
	}
	return sel, nil
}

// playRecording plays one recording in the terminal, with control keys
// when stdin is a terminal.
func playRecording(ctx context.Context, rio replayIO, path string, cfg audit.PlayerConfig) error {
	info, err := audit.ReadRecordingInfo(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(rio.stderr, "%s: %s %s %s/%s", info.ID, info.User, info.Kind, info.Namespace, info.Pod)
	if info.Command != "" {
		fmt.Fprintf(rio.stderr, " -- %s", info.Command)
	}
	fmt.Fprintf(rio.stderr, ", %s, %s\n", info.Start.Format(time.RFC3339), info.Duration.Round(100*time.Millisecond))
	out := rio.stdout
	if f, ok := rio.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		old, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return fmt.Errorf("replay: raw terminal: %w", err)
		}
		defer term.Restore(int(f.Fd()), old)
		fmt.Fprint(rio.stderr, "space: pause/resume  .: step  +/-: speed  q: quit\r\n")
		cfg.Keys = f
		if !info.TTY {
			// The session had no terminal to turn \n into \r\n; a raw
			// one does not either.
			out = &crlfWriter{w: out}
		}
	}
	p, err := audit.NewPlayer(cfg)
	if err != nil {
		return err
	}
	return p.PlayFile(ctx, out, path)
}

// crlfWriter writes \r\n for each \n not already after a \r.
type crlfWriter struct {
	w    io.Writer
	last byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	buf := make([]byte, 0, len(p)+8)
	for _, b := range p {
		if b == '\n' && c.last != '\r' {
			buf = append(buf, '\r')
		}
		buf = append(buf, b)
		c.last = b
	}
	if _, err := c.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// reissue sends the session's mutating calls to the cluster of a
// kubeconfig and prints each outcome. Calls the target refused make it
// fail.
func reissue(ctx context.Context, rio replayIO, events []*auditv1.Event, kubeconfig, kubeContext string, opts audit.ReissueOptions) error {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return fmt.Errorf("replay: kubeconfig %s: %w", kubeconfig, err)
	}
	mode := "for real"
	if opts.DryRun {
		mode = "as server-side dry runs"
	}
	fmt.Fprintf(rio.stderr, "re-issuing the mutating calls among %d recorded calls to %s, %s\n", len(events), cfg.Host, mode)
	results, err := audit.Reissue(ctx, cfg, events, opts)
	failed := 0
	for _, r := range results {
		fmt.Fprintln(rio.stdout, r)
		if r.Skipped == "" && (r.Code < 200 || r.Code > 299) {
			failed++
		}
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("replay: %d of %d calls failed on %s", failed, len(results), cfg.Host)
	}
	return nil
}

// parseSince reads RFC3339, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--since %q: want RFC3339 or a duration such as 2h", s)
	}
	return now.Add(-d), nil
}

// auditPaths finds the recordings directory and the audit file: from
// their flags, else the --config file, else $KUBEGATE_RECORDINGS and
// $KUBEGATE_AUDIT_FILE, else the file $KUBEGATE_CONFIG names.
type auditPaths struct {
	dir, file, config string
	loaded            *app.Config
}

func (p *auditPaths) register(fs *flag.FlagSet) {
	fs.StringVar(&p.dir, "dir", "", "recordings `directory` (default $KUBEGATE_RECORDINGS)")
	fs.StringVar(&p.file, "audit-file", "", "audit log `path` (default $KUBEGATE_AUDIT_FILE)")
	fs.StringVar(&p.config, "config", "", "kubegate configuration `file` to take both from (default $KUBEGATE_CONFIG)")
}

// recordingsDir returns the recordings directory. Unless required, it
// returns "" rather than an error when none is configured.
func (p *auditPaths) recordingsDir(required bool) (string, error) {
	dir, err := p.find(p.dir, "KUBEGATE_RECORDINGS", func(c *app.Config) string { return c.Audit.Recordings.Dir })
	if err == nil && dir == "" && required {
		err = errors.New("no recordings directory: pass --dir or --config, or set KUBEGATE_RECORDINGS or KUBEGATE_CONFIG")
	}
	return dir, err
}

// auditFile returns the audit log's path.
func (p *auditPaths) auditFile() (string, error) {
	file, err := p.find(p.file, "KUBEGATE_AUDIT_FILE", func(c *app.Config) string { return c.Audit.File.Path })
	if err == nil && file == "" {
		err = errors.New("no audit file: pass --audit-file or --config, or set KUBEGATE_AUDIT_FILE or KUBEGATE_CONFIG")
	}
	return file, err
}

func (p *auditPaths) find(flagValue, env string, fromConfig func(*app.Config) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	config := p.config
	if config == "" {
		if v := os.Getenv(env); v != "" {
			return v, nil
		}
		config = os.Getenv("KUBEGATE_CONFIG")
	}
	if config == "" {
		return "", nil
	}
	if p.loaded == nil {
		c, err := app.LoadConfig(config)
		if err != nil {
			return "", err
		}
		p.loaded = c
	}
	return fromConfig(p.loaded), nil
}
