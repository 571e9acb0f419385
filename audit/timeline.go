package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// rotatedSuffix is the layout of the timestamp FileSink appends to a
// rotated file's name.
const rotatedSuffix = "20060102T150405.000000000Z"

// AuditFiles returns the audit file at path and its rotated siblings
// (path.<UTC timestamp>), oldest first: the order the events were written.
// A missing path is left out if it has rotated siblings.
func AuditFiles(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, m := range matches {
		if _, err := time.Parse(rotatedSuffix, strings.TrimPrefix(m, path+".")); err == nil {
			files = append(files, m)
		}
	}
	slices.Sort(files) // the timestamps sort as text
	if _, err := os.Stat(path); err == nil || len(files) == 0 {
		files = append(files, path)
	}
	return files, nil
}

// globEscape escapes the glob metacharacters of a literal path.
func globEscape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ScanAuditEvents calls fn with each event of the audit file at path and
// its rotated siblings, in the order they were written, until fn returns
// false. An incomplete last line (a write in progress, or a crash) ends a
// file quietly; any other line that is not an event is an error naming
// the file and line.
func ScanAuditEvents(path string, fn func(ev *auditv1.Event) bool) error {
	return scanAudit(path, nil, fn)
}

// scanAudit is ScanAuditEvents that decodes only the lines holding all
// of the needles.
func scanAudit(path string, needles [][]byte, fn func(ev *auditv1.Event) bool) error {
	files, err := AuditFiles(path)
	if err != nil {
		return err
	}
	for _, name := range files {
		more, err := scanAuditFile(name, needles, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func scanAuditFile(name string, needles [][]byte, fn func(ev *auditv1.Event) bool) (more bool, err error) {
	f, err := os.Open(name)
	if err != nil {
		return false, fmt.Errorf("reading audit events: %w", err)
	}
	defer f.Close()
	lr := newLineReader(f)
lines:
	for {
		line, complete, err := lr.next()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading audit events from %s: %w", name, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		for _, n := range needles {
			if !bytes.Contains(line, n) {
				continue lines
			}
		}
		ev := new(auditv1.Event)
		if err := json.Unmarshal(line, ev); err != nil {
			if !complete {
				return true, nil
			}
			return false, fmt.Errorf("audit file %s line %d: %w", name, lr.n, err)
		}
		if !fn(ev) {
			return false, nil
		}
	}
}

// SessionSelector picks the audit events of one agent session. Set
// fields combine: an event must match each.
type SessionSelector struct {
	// Credential selects the calls made with one bearer token: its
	// AnnotationCredential, "sha256:<hex>", or a prefix of the hex of at
	// least 4 digits, with or without "sha256:". A prefix that matches
	// two credentials is an error.
	Credential string
	// From and To select the events from the one with audit id From to
	// the one with audit id To, both included, in file order. Both or
	// neither.
	From, To string
	// User selects the calls of one username.
	User string
	// Since selects the calls received at or after it.
	Since time.Time
}

// ParseSessionSelector reads "FROM..TO" as an audit-id range, and anything
// else as a credential id.
func ParseSessionSelector(s string) (SessionSelector, error) {
	if from, to, ok := strings.Cut(s, ".."); ok {
		if from == "" || to == "" {
			return SessionSelector{}, fmt.Errorf("audit-id range %q: want FROM..TO", s)
		}
		return SessionSelector{From: from, To: to}, nil
	}
	sel := SessionSelector{Credential: s}
	if _, err := sel.credentialHex(); err != nil {
		return SessionSelector{}, fmt.Errorf("%q is neither a credential id (sha256:HEX) nor an audit-id range (FROM..TO)", s)
	}
	return sel, nil
}

func (s SessionSelector) credentialHex() (string, error) {
	h := strings.TrimPrefix(s.Credential, "sha256:")
	if len(h) < 4 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("credential %q: want sha256: and at least 4 lowercase hex digits", s.Credential)
	}
	return h, nil
}

// SelectSession returns the events of the audit file at path (and its
// rotated siblings) that sel picks, in the order they were received.
func SelectSession(path string, sel SessionSelector) ([]*auditv1.Event, error) {
	if sel == (SessionSelector{}) {
		return nil, errors.New("selecting a session: no credential, audit-id range or user given")
	}
	if (sel.From == "") != (sel.To == "") {
		return nil, errors.New("selecting a session: an audit-id range needs both ends")
	}
	var hex string
	var needles [][]byte
	if sel.Credential != "" {
		var err error
		if hex, err = sel.credentialHex(); err != nil {
			return nil, err
		}
		needles = append(needles, []byte("sha256:"+hex))
	}
	if sel.From != "" {
		needles = nil // every event of the range counts for its ends
	}
	var out []*auditv1.Event
	credentials := map[string]bool{}
	inRange, seenFrom, seenTo := sel.From == "", false, false
	err := scanAudit(path, needles, func(ev *auditv1.Event) bool {
		id := string(ev.AuditID)
		if sel.From != "" && id == sel.From && !seenFrom {
			inRange, seenFrom = true, true
		}
		if inRange && sel.matches(ev, hex) {
			out = append(out, ev)
			if hex != "" {
				credentials[ev.Annotations[AnnotationCredential]] = true
			}
		}
		if sel.To != "" && id == sel.To && inRange {
			seenTo = true
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	switch {
	case sel.From != "" && !seenFrom:
		return nil, fmt.Errorf("audit id %s not found in %s", sel.From, path)
	case sel.To != "" && !seenTo:
		return nil, fmt.Errorf("audit id %s not found at or after %s in %s", sel.To, sel.From, path)
	case len(credentials) > 1:
		ids := slices.Sorted(maps.Keys(credentials))
		return nil, fmt.Errorf("credential %s is ambiguous: %s", sel.Credential, strings.Join(ids, ", "))
	}
	slices.SortStableFunc(out, func(a, b *auditv1.Event) int {
		return a.RequestReceivedTimestamp.Time.Compare(b.RequestReceivedTimestamp.Time)
	})
	return out, nil
}

func (s SessionSelector) matches(ev *auditv1.Event, hex string) bool {
	if hex != "" && !strings.HasPrefix(strings.TrimPrefix(ev.Annotations[AnnotationCredential], "sha256:"), hex) {
		return false
	}
	if s.User != "" && ev.User.Username != s.User {
		return false
	}
	return s.Since.IsZero() || !ev.RequestReceivedTimestamp.Time.Before(s.Since)
}

// TimelineEntry is one API call of a timeline.
type TimelineEntry struct {
	// Offset is the time from the first call's receipt to this one's.
	Offset time.Duration
	// Verb is the Kubernetes verb (get, list, create...).
	Verb string
	// Resource is group/resource/subresource ("apps/deployments/scale"),
	// without the group for the core group, or the path of a
	// non-resource call ("/version").
	Resource string
	// Object is namespace/name, namespace/* for a collection, the name
	// alone for a cluster-scoped object, or "-".
	Object string
	// Decision is the policy's action (allow, deny...), or "-" if none
	// was made (authentication failed).
	Decision string
	// Code is the HTTP status code of the response.
	Code int32
	// Note is rule=NAME for a call the policy did not allow, and exit=N
	// for the end of an exec session.
	Note string
	// AuditID is the call's audit id.
	AuditID string
}

// Timeline describes events, taken in the order given.
func Timeline(events []*auditv1.Event) []TimelineEntry {
	out := make([]TimelineEntry, 0, len(events))
	for _, ev := range events {
		e := TimelineEntry{
			Verb:     ev.Verb,
			Resource: ev.RequestURI,
			Object:   "-",
			Decision: ev.Annotations[AnnotationDecision],
			AuditID:  string(ev.AuditID),
		}
		e.Offset = ev.RequestReceivedTimestamp.Sub(events[0].RequestReceivedTimestamp.Time)
		if e.Decision == "" {
			e.Decision = "-"
		}
		if ev.ResponseStatus != nil {
			e.Code = ev.ResponseStatus.Code
		}
		if ref := ev.ObjectRef; ref != nil {
			e.Resource = strings.Join(nonEmpty(ref.APIGroup, ref.Resource, ref.Subresource), "/")
			name := ref.Name
			if name == "" && ev.Verb == "create" {
				name = bodyName(ev.RequestObject)
			}
			e.Object = objectName(ref.Namespace, name)
		} else if path, _, ok := strings.Cut(e.Resource, "?"); ok {
			e.Resource = path
		}
		var notes []string
		if e.Decision != "allow" && e.Decision != "-" {
			notes = append(notes, "rule="+ev.Annotations[AnnotationRule])
		}
		if code, ok := ev.Annotations[AnnotationSessionExitCode]; ok {
			notes = append(notes, "exit="+code)
		}
		e.Note = strings.Join(notes, " ")
		out = append(out, e)
	}
	return out
}

func nonEmpty(parts ...string) []string {
	return slices.DeleteFunc(parts, func(s string) bool { return s == "" })
}

// bodyName is metadata.name of a recorded JSON request body, so that a
// create, whose URL names no object, shows what it created.
func bodyName(obj *runtime.Unknown) string {
	if obj == nil {
		return ""
	}
	var m struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if json.Unmarshal(obj.Raw, &m) != nil {
		return ""
	}
	return m.Metadata.Name
}

func objectName(namespace, name string) string {
	switch {
	case namespace != "" && name != "":
		return namespace + "/" + name
	case namespace != "":
		return namespace + "/*"
	case name != "":
		return name
	}
	return "-"
}

// WriteTimeline writes events as a table, one line per call: the offset
// from the first, verb, resource, object, decision, HTTP code, note and
// audit id.
func WriteTimeline(w io.Writer, events []*auditv1.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OFFSET\tVERB\tRESOURCE\tOBJECT\tDECISION\tCODE\tNOTE\tAUDIT-ID")
	for _, e := range Timeline(events) {
		note := e.Note
		if note == "" {
			note = "-"
		}
		fmt.Fprintf(tw, "%+.3fs\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			e.Offset.Seconds(), e.Verb, e.Resource, e.Object, e.Decision, e.Code, note, e.AuditID)
	}
	return tw.Flush()
}
