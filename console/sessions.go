package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kubegate/kubegate/audit"
	"github.com/kubegate/kubegate/gateway"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// sessionQuery selects sessions: each field, when set, must match. User,
// Namespace and Pod match as case-insensitive substrings; Since and Until
// bound the start.
type sessionQuery struct {
	User, Namespace, Pod string
	Since, Until         time.Time
}

func parseSessionQuery(r *http.Request, now time.Time) (sessionQuery, error) {
	q := r.URL.Query()
	sq := sessionQuery{User: q.Get("user"), Namespace: q.Get("namespace"), Pod: q.Get("pod")}
	var err error
	if s := q.Get("since"); s != "" {
		if sq.Since, err = audit.ParseSearchTime(s, now); err != nil {
			return sq, err
		}
	}
	if s := q.Get("until"); s != "" {
		if sq.Until, err = audit.ParseSearchTime(s, now); err != nil {
			return sq, err
		}
	}
	return sq, nil
}

func contains(s, sub string) bool {
	return sub == "" || strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func (q sessionQuery) matches(user, ns, pod string, start time.Time) bool {
	return contains(user, q.User) && contains(ns, q.Namespace) && contains(pod, q.Pod) &&
		(q.Since.IsZero() || !start.Before(q.Since)) && (q.Until.IsZero() || start.Before(q.Until))
}

// recordingView is a recorded session in the list.
type recordingView struct {
	ID        string    `json:"id"`
	Start     time.Time `json:"start"`
	Duration  float64   `json:"duration"` // seconds
	User      string    `json:"user"`
	Namespace string    `json:"namespace"`
	Pod       string    `json:"pod"`
	Container string    `json:"container,omitempty"`
	Kind      string    `json:"kind"`
	Command   string    `json:"command,omitempty"`
	TTY       bool      `json:"tty"`
	ExitCode  *int      `json:"exitCode,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	Live      bool      `json:"live,omitempty"`
}

func viewRecording(info audit.RecordingInfo) recordingView {
	return recordingView{
		ID: info.ID, Start: info.Start, Duration: info.Duration.Seconds(), User: info.User, Namespace: info.Namespace,
		Pod: info.Pod, Container: info.Container, Kind: info.Kind, Command: info.Command, TTY: info.TTY,
		ExitCode: info.ExitCode, Truncated: info.Truncated,
	}
}

// sessionsView is GET /ui/api/sessions.
type sessionsView struct {
	Live        []gateway.LiveSession `json:"live"`
	Unreachable []string              `json:"unreachable,omitempty"`
	Recorded    []recordingView       `json:"recorded"`
	// Problem says what could not be read, if anything.
	Problem string `json:"problem,omitempty"`
}

// maxListed bounds the recordings one list shows (the newest).
const maxListed = 500

func (c *Console) listSessions(w http.ResponseWriter, r *http.Request, _ *session) {
	q, err := parseSessionQuery(r, c.cfg.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	out := sessionsView{Live: []gateway.LiveSession{}, Recorded: []recordingView{}}
	live := map[string]bool{}
	if c.cfg.Sessions != nil {
		all, missing := c.cfg.Sessions.List(r.Context())
		out.Unreachable = missing
		for _, l := range all {
			live[l.ID] = true
			if q.matches(l.User, l.Namespace, l.Pod, l.Started) {
				out.Live = append(out.Live, l)
			}
		}
	}
	if c.cfg.RecordingsDir != "" {
		infos, err := audit.ListRecordings(c.cfg.RecordingsDir, audit.RecordingFilter{Since: q.Since})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			out.Problem = "some recordings could not be read: " + err.Error()
		}
		for i := len(infos) - 1; i >= 0 && len(out.Recorded) < maxListed; i-- {
			info := infos[i]
			if q.matches(info.User, info.Namespace, info.Pod, info.Start) {
				v := viewRecording(info)
				v.Live = live[info.ID]
				out.Recorded = append(out.Recorded, v)
			}
		}
	}
	writeJSON(w, out)
}

func (c *Console) killSession(w http.ResponseWriter, r *http.Request, s *session) {
	if c.cfg.Sessions == nil {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no live sessions here")
		return
	}
	var spec decideSpec
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&spec); err != nil && err != io.EOF {
		writeError(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "bad body: "+err.Error())
		return
	}
	reason := "killed by " + s.principal.User + " in the kubegate console"
	if r := strings.TrimSpace(spec.Reason); r != "" {
		reason += ": " + r
	}
	id := r.PathValue("id")
	ok, err := c.cfg.Sessions.Kill(r.Context(), id, reason)
	c.cfg.Log.Info("console session kill", "user", s.principal.User, "session", id, "killed", ok, "err", err)
	switch {
	case ok:
		writeJSON(w, map[string]any{"killed": true, "reason": reason})
	case err != nil:
		writeError(w, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, "session "+id+": "+err.Error())
	default:
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no live session "+id)
	}
}

// findRecording returns the .cast file of session id; ids only, never
// paths.
func (c *Console) findRecording(w http.ResponseWriter, id string) (string, bool) {
	if c.cfg.RecordingsDir == "" || strings.ContainsAny(id, `/\.`) {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no recording of session "+id)
		return "", false
	}
	path, err := audit.FindRecording(c.cfg.RecordingsDir, id)
	if err != nil {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return "", false
	}
	return path, true
}

// auditEventView is an audit event beside a recording.
type auditEventView struct {
	Time        time.Time         `json:"time"`
	AuditID     string            `json:"auditID"`
	User        string            `json:"user"`
	Verb        string            `json:"verb"`
	URI         string            `json:"uri"`
	Code        int32             `json:"code,omitempty"`
	Annotations map[string]string `json:"annotations"`
}

func viewEvent(ev *auditv1.Event) auditEventView {
	v := auditEventView{Time: audit.EventTime(ev), AuditID: string(ev.AuditID), User: ev.User.Username, Verb: ev.Verb,
		URI: ev.RequestURI, Annotations: map[string]string{}}
	if ev.ResponseStatus != nil {
		v.Code = ev.ResponseStatus.Code
	}
	for k, val := range ev.Annotations {
		// The hash chain is for verification, not for reading.
		if k != audit.AnnotationAuditPrev && k != audit.AnnotationAuditID {
			v.Annotations[strings.TrimPrefix(k, "kubegate.dev/")] = val
		}
	}
	return v
}

// recordingDetailView is GET /ui/api/recordings/{id}: the recording, the
// session's audit event, and the events of the access request that
// approved it.
type recordingDetailView struct {
	Recording recordingView    `json:"recording"`
	Session   *auditEventView  `json:"session,omitempty"`
	Approvals []auditEventView `json:"approvals"`
	Problem   string           `json:"problem,omitempty"`
}

func (c *Console) recordingDetail(w http.ResponseWriter, r *http.Request, _ *session) {
	path, ok := c.findRecording(w, r.PathValue("id"))
	if !ok {
		return
	}
	info, err := audit.ReadRecordingInfo(path)
	if err != nil {
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	out := recordingDetailView{Recording: viewRecording(info), Approvals: []auditEventView{}}
	if c.cfg.AuditFile != "" {
		var sessEv *auditv1.Event
		var related []*auditv1.Event
		err := audit.ScanAuditEvents(c.cfg.AuditFile, func(ev *auditv1.Event) bool {
			if string(ev.AuditID) == info.ID {
				sessEv = ev
			}
			if ev.Annotations[audit.AnnotationAccessRequest] != "" {
				related = append(related, ev)
			}
			return true
		})
		if err != nil {
			out.Problem = "reading the audit log: " + err.Error()
		}
		if sessEv != nil {
			v := viewEvent(sessEv)
			out.Session = &v
			if reqID := sessEv.Annotations[audit.AnnotationAccessRequest]; reqID != "" {
				for _, ev := range related {
					if ev.Annotations[audit.AnnotationAccessRequest] == reqID && ev.AuditID != sessEv.AuditID {
						out.Approvals = append(out.Approvals, viewEvent(ev))
					}
				}
			}
		}
	}
	writeJSON(w, out)
}

// recordingCast serves the recording for asciinema-player: the header,
// the output and resize events, and a marker at each line typed, labelled
// with what was typed (recordings are masked as they are written).
func (c *Console) recordingCast(w http.ResponseWriter, r *http.Request, _ *session) {
	path, ok := c.findRecording(w, r.PathValue("id"))
	if !ok {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	defer f.Close()
	cr, err := audit.NewCastReader(f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "reading the recording: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-asciicast")
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	hdr := cr.Header
	if hdr.Width == 0 || hdr.Height == 0 {
		hdr.Width, hdr.Height = 80, 24
	}
	b, _ := json.Marshal(hdr)
	bw.Write(append(b, '\n'))
	var typed strings.Builder
	for {
		ev, err := cr.Next()
		if err != nil {
			return // the end, or damage: play what was readable
		}
		switch ev.Code {
		case "o", "r", "m":
			writeCastEvent(bw, ev.Time, ev.Code, ev.Data)
		case "i":
			for _, ch := range ev.Data {
				switch {
				case ch == '\r' || ch == '\n':
					if label := strings.TrimSpace(typed.String()); label != "" {
						writeCastEvent(bw, ev.Time, "m", label)
					}
					typed.Reset()
				case ch == 0x7f || ch == 0x08:
					s := []rune(typed.String())
					if len(s) > 0 {
						typed.Reset()
						typed.WriteString(string(s[:len(s)-1]))
					}
				case ch >= 0x20 && typed.Len() < 200:
					typed.WriteRune(ch)
				}
			}
		}
	}
}

func writeCastEvent(w io.Writer, t float64, code, data string) {
	b, _ := json.Marshal([]any{t, code, data})
	w.Write(append(b, '\n'))
}

// followPoll is how often a live recording is checked for more, and
// liveCheck how often whether its session still runs.
const (
	followPoll = 200 * time.Millisecond
	liveCheck  = 2 * time.Second
)

// followLive streams a live session's recording as it is written, in
// asciinema-player's eventsource format: a reset with the terminal size,
// everything shown so far, then each output and resize event as it is
// written, then {"state":"offline"} when the session has ended.
func (c *Console) followLive(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("id")
	path, ok := c.findRecording(w, id)
	if !ok {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "streaming is not supported here")
		return
	}
	f, err := os.Open(path)
	if err != nil {
		writeError(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	fw := &follower{r: bufio.NewReader(f)}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	var checked time.Time
	for first := true; ; first = false {
		events, done := fw.read()
		if first {
			// A reset to the size the terminal has now, at the time of the
			// last event so far; what was shown before follows as events
			// at that same time, so the player draws it at once.
			cols, rows := fw.header.Width, fw.header.Height
			if cols == 0 || rows == 0 {
				cols, rows = 80, 24
			}
			var last float64
			for _, ev := range events {
				if ev.Code == "r" {
					cols, rows = parseSize(ev.Data, cols, rows)
				}
				last = ev.Time
			}
			b, _ := json.Marshal(map[string]any{"cols": cols, "rows": rows, "time": last})
			if writeData(w, b) != nil {
				return
			}
			for i := range events {
				if events[i].Code == "r" {
					events[i].Code = "" // already applied
				}
				events[i].Time = last
			}
		}
		for _, ev := range events {
			switch ev.Code {
			case "o", "r":
				b, _ := json.Marshal([]any{ev.Time, ev.Code, ev.Data})
				if writeData(w, b) != nil {
					return
				}
			}
		}
		fl.Flush()
		// Whether the session still runs is asked only at the end of what
		// was written, and at most every liveCheck: across a cluster it is
		// a call to every node.
		if !done && fw.atEnd() && time.Since(checked) >= liveCheck {
			checked = time.Now()
			if !c.isLive(r, id) {
				events, _ := fw.read() // what was written before it ended
				for _, ev := range events {
					if ev.Code == "o" || ev.Code == "r" {
						b, _ := json.Marshal([]any{ev.Time, ev.Code, ev.Data})
						_ = writeData(w, b)
					}
				}
				done = true
			}
		}
		if done {
			_ = writeData(w, []byte(`{"state":"offline"}`))
			fl.Flush()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-c.closed:
			return
		case <-tick.C:
		}
	}
}

func (c *Console) isLive(r *http.Request, id string) bool {
	if c.cfg.Sessions == nil {
		return false
	}
	all, _ := c.cfg.Sessions.List(r.Context())
	for _, l := range all {
		if l.ID == id {
			return true
		}
	}
	return false
}

func writeData(w io.Writer, b []byte) error {
	_, err := io.WriteString(w, "data: "+string(b)+"\n\n")
	return err
}

func parseSize(s string, cols, rows int) (int, int) {
	var c, r int
	if _, err := fmt.Sscanf(s, "%dx%d", &c, &r); err == nil && c > 0 && r > 0 {
		return c, r
	}
	return cols, rows
}

// follower reads a recording that is still being written: whole lines
// only; a partial last line waits for the rest.
type follower struct {
	r       *bufio.Reader
	partial []byte
	header  audit.CastHeader
	started bool
	eof     bool
}

// read returns the events written since the last call; done is true after
// the exit event.
func (f *follower) read() (events []audit.CastEvent, done bool) {
	for {
		chunk, err := f.r.ReadBytes('\n')
		f.partial = append(f.partial, chunk...)
		if err != nil {
			f.eof = true
			return events, done
		}
		f.eof = false
		line := bytes.TrimSpace(f.partial)
		f.partial = f.partial[:0]
		if len(line) == 0 {
			continue
		}
		if !f.started {
			_ = json.Unmarshal(line, &f.header)
			f.started = true
			continue
		}
		ev, ok := decodeEvent(line)
		if !ok {
			continue // not an event: skipped, as the player would
		}
		if ev.Code == audit.CodeExit {
			done = true
		}
		events = append(events, ev)
	}
}

// decodeEvent reads an asciicast event line, [time, code, data].
func decodeEvent(line []byte) (audit.CastEvent, bool) {
	var parts []json.RawMessage
	var ev audit.CastEvent
	if json.Unmarshal(line, &parts) != nil || len(parts) != 3 ||
		json.Unmarshal(parts[0], &ev.Time) != nil || json.Unmarshal(parts[1], &ev.Code) != nil || json.Unmarshal(parts[2], &ev.Data) != nil {
		return audit.CastEvent{}, false
	}
	return ev, true
}

func (f *follower) atEnd() bool { return f.eof && len(f.partial) == 0 }
