package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// ErrRecordingNotFound reports that no recording has the session id asked for.
var ErrRecordingNotFound = errors.New("recording not found")

// CodeExit is the code of an exit event, [t, "x", "<exit code>"], as
// asciicast v3 writes it. Recordings that end with one report its code.
const CodeExit = "x"

// RecordingFilter selects recordings. Each zero field selects all.
type RecordingFilter struct {
	// User, Pod and Namespace must equal the header's metadata.
	User, Pod, Namespace string
	// Since keeps the recordings that started at or after it.
	Since time.Time
}

// RecordingInfo describes one recording from its header and last line.
type RecordingInfo struct {
	// ID is the session id: the header's session_id, else the file name.
	ID string
	// Path is the .cast file.
	Path string
	// Start is when the session started, to the second, in UTC.
	Start time.Time
	// Duration is the time of the last event.
	Duration time.Duration
	// User, Namespace, Pod, Container and Kind (exec or attach) come from
	// the header's env metadata; empty if missing.
	User, Namespace, Pod, Container, Kind string
	// Command is the exec command line, shell-quoted; empty for attach.
	Command string
	// TTY is whether the session had a terminal.
	TTY bool
	// ExitCode is the command's exit code, nil if the recording does not
	// end with an exit event. The gateway puts it in the session's audit
	// event; see SessionExitCodes.
	ExitCode *int
	// Truncated is true if the last line is not a whole event: the file
	// was cut short, and Duration is that of the last whole event before.
	// Damage in the middle of a file is found only by reading it all
	// (ParseCastPrefix).
	Truncated bool
}

// ListRecordings lists the recordings under dir (dir/<YYYY-MM-DD>/*.cast)
// that f selects, by start time then id. It reads each file's header and
// last lines only. Files it cannot read are left out and reported in the
// error, which comes with the recordings that could be read.
func ListRecordings(dir string, f RecordingFilter) ([]RecordingInfo, error) {
	days, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing recordings: %w", err)
	}
	var sinceDay string
	if !f.Since.IsZero() {
		sinceDay = f.Since.UTC().Format(time.DateOnly)
	}
	var out []RecordingInfo
	var errs []error
	for _, day := range days {
		name := day.Name()
		if !day.IsDir() || !isDay(name) || name < sinceDay {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, file := range files {
			if file.IsDir() || !strings.HasSuffix(file.Name(), ".cast") {
				continue
			}
			info, err := ReadRecordingInfo(filepath.Join(dir, name, file.Name()))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if f.selects(info) {
				out = append(out, info)
			}
		}
	}
	slices.SortFunc(out, func(a, b RecordingInfo) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, errors.Join(errs...)
}

func isDay(name string) bool {
	_, err := time.Parse(time.DateOnly, name)
	return err == nil
}

func (f RecordingFilter) selects(r RecordingInfo) bool {
	return (f.User == "" || f.User == r.User) &&
		(f.Pod == "" || f.Pod == r.Pod) &&
		(f.Namespace == "" || f.Namespace == r.Namespace) &&
		(f.Since.IsZero() || !r.Start.Before(f.Since))
}

// ReadRecordingInfo describes the recording at path from its header and
// last lines, without reading the rest.
func ReadRecordingInfo(path string) (RecordingInfo, error) {
	file, err := os.Open(path)
	if err != nil {
		return RecordingInfo{}, err
	}
	defer file.Close()
	header, headerLen, err := readHeader(file)
	if err != nil {
		return RecordingInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	env := header.Env
	info := RecordingInfo{
		ID:        env["session_id"],
		Path:      path,
		Start:     time.Unix(header.Timestamp, 0).UTC(),
		User:      env["user"],
		Namespace: env["namespace"],
		Pod:       env["pod"],
		Container: env["container"],
		Kind:      env["kind"],
		Command:   header.Command,
		TTY:       env["tty"] == "true",
	}
	if info.ID == "" {
		info.ID = strings.TrimSuffix(filepath.Base(path), ".cast")
	}
	st, err := file.Stat()
	if err != nil {
		return RecordingInfo{}, err
	}
	if err := info.readEnd(file, headerLen, st.Size()); err != nil {
		return RecordingInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// readHeader parses the first line and returns its length with the newline.
func readHeader(r io.Reader) (CastHeader, int64, error) {
	line, err := bufio.NewReaderSize(r, 4096).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return CastHeader{}, 0, err
	}
	c, err := ParseCast(bytes.NewReader(line))
	if err != nil {
		return CastHeader{}, 0, err
	}
	return c.Header, int64(len(line)), nil
}

// readEnd sets Duration, ExitCode and Truncated from the last lines after
// the header, which ends at offset start, to the end of the file at size.
func (info *RecordingInfo) readEnd(f io.ReaderAt, start, size int64) error {
	lines := &backLines{f: f, start: start, end: size}
	// Only the last line may be cut short; one more is read back if it is.
	for range 2 {
		line, complete, err := lines.prev()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ev, perr := parseEvent(line)
		if perr != nil {
			info.Truncated = true
			if !complete {
				continue
			}
			return nil // a bad whole line: damage a full read will locate
		}
		info.Duration = time.Duration(ev.Time * float64(time.Second))
		if ev.Code == CodeExit {
			if code, err := strconv.Atoi(ev.Data); err == nil {
				info.ExitCode = &code
			}
		}
		return nil
	}
	return nil
}

// backLines reads the non-blank lines of f[start:end] from the last.
type backLines struct {
	f          io.ReaderAt
	start, end int64
	seen       bool // a line was returned: the next ones are complete
}

// prev returns the line before those returned so far; complete is false
// for a last line without its newline. io.EOF means none is left.
func (b *backLines) prev() (line []byte, complete bool, err error) {
	for b.end > b.start {
		complete = b.seen
		if !b.seen {
			last := make([]byte, 1)
			if _, err := b.f.ReadAt(last, b.end-1); err != nil {
				return nil, false, err
			}
			if complete = last[0] == '\n'; complete {
				b.end--
			}
		}
		b.seen = true
		begin, err := b.lineStart()
		if err != nil {
			return nil, false, err
		}
		line = make([]byte, b.end-begin)
		if _, err := b.f.ReadAt(line, begin); err != nil {
			return nil, false, err
		}
		b.end = max(begin-1, b.start) // drop the line and the newline before it
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) > 0 {
			return line, complete, nil
		}
	}
	return nil, false, io.EOF
}

// lineStart finds the start of the line that ends at b.end.
func (b *backLines) lineStart() (int64, error) {
	buf := make([]byte, 4096)
	pos := b.end
	for pos > b.start {
		n := min(int64(len(buf)), pos-b.start)
		chunk := buf[:n]
		if _, err := b.f.ReadAt(chunk, pos-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return pos - n + int64(i) + 1, nil
		}
		pos -= n
	}
	return b.start, nil
}

// FindRecording returns the .cast file of the session id under dir. An id
// that names an existing .cast file is returned as it is. A prefix of one
// session id is accepted too.
func FindRecording(dir, id string) (string, error) {
	if strings.HasSuffix(id, ".cast") || strings.ContainsRune(id, filepath.Separator) {
		if _, err := os.Stat(id); err != nil {
			return "", fmt.Errorf("recording %s: %w", id, err)
		}
		return id, nil
	}
	if !validSessionID(id) {
		return "", fmt.Errorf("%w: %q is not a session id", ErrRecordingNotFound, id)
	}
	// A session id holds no glob metacharacters.
	matches, err := filepath.Glob(filepath.Join(dir, "*", id+"*.cast"))
	if err != nil {
		return "", err
	}
	var exact, prefixed []string
	for _, m := range matches {
		if !isDay(filepath.Base(filepath.Dir(m))) {
			continue
		}
		if filepath.Base(m) == id+".cast" {
			exact = append(exact, m)
		} else {
			prefixed = append(prefixed, m)
		}
	}
	switch {
	case len(exact) == 1:
		return exact[0], nil
	case len(exact) == 0 && len(prefixed) == 1:
		return prefixed[0], nil
	case len(exact)+len(prefixed) == 0:
		return "", fmt.Errorf("%w: no session %q under %s", ErrRecordingNotFound, id, dir)
	}
	return "", fmt.Errorf("session id %q is ambiguous: %s", id, strings.Join(append(exact, prefixed...), ", "))
}

// SessionExitCodes returns the exit codes of the exec and attach sessions
// in the audit file at path and its rotated siblings, by session id: the
// AnnotationSessionExitCode of each session's event, whose audit id is
// the session id.
func SessionExitCodes(path string) (map[string]int, error) {
	codes := map[string]int{}
	err := scanAudit(path, [][]byte{[]byte(AnnotationSessionExitCode)}, func(ev *auditv1.Event) bool {
		if code, err := strconv.Atoi(ev.Annotations[AnnotationSessionExitCode]); err == nil {
			codes[string(ev.AuditID)] = code
		}
		return true
	})
	return codes, err
}
