package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"
)

// linkCount is how many names a file has; 0 once it is deleted.
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// logReader reads a file sink's event lines in order, across rotations,
// following the active file as it grows. It hands out whole lines only:
// one the sink is still writing waits for the next read.
type logReader struct {
	path string

	f       *os.File // the file being read, nil before the first
	off     int64    // where the next line starts in f
	pending []byte   // bytes of f after off already read: part of a line
	buf     []byte
}

// logLine is one event line and where it was read.
type logLine struct {
	seq  uint64 // 0 for a line without an audit id
	line []byte // without the newline; valid until the next read
	size int64  // bytes it took in the file, newline included
}

// next returns the next whole line, or io.EOF when there is none yet.
func (r *logReader) next() (logLine, error) {
	for {
		if i := bytes.IndexByte(r.pending, '\n'); i >= 0 {
			line := r.pending[:i]
			r.pending = r.pending[i+1:]
			r.off += int64(i + 1)
			return logLine{seq: lineSeq(line), line: line, size: int64(i + 1)}, nil
		}
		if r.f == nil {
			ok, err := r.openAfter(nil)
			if err != nil {
				return logLine{}, err
			}
			if !ok {
				return logLine{}, io.EOF // no events yet
			}
			continue
		}
		if len(r.buf) == 0 {
			r.buf = make([]byte, 256<<10)
		}
		if len(r.pending) > 0 && len(r.pending) >= len(r.buf)/2 {
			r.buf = make([]byte, 2*len(r.buf)) // a long line
		}
		n := copy(r.buf, r.pending)
		m, err := r.f.ReadAt(r.buf[n:], r.off+int64(n))
		r.pending = r.buf[:n+m]
		if m > 0 {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return logLine{}, err
		}
		// The end of this file: go on with the next one if the sink has
		// rotated past it.
		moved, err := r.advance()
		if err != nil {
			return logLine{}, err
		}
		if !moved {
			return logLine{}, io.EOF
		}
	}
}

// openAfter starts reading the file that follows prev in the sink's
// files, or the first one if prev is nil. It reports false if there is
// none. The sink may rotate between a listing and an open, and then a
// name leads past a file: the open is checked against a second listing.
func (r *logReader) openAfter(prev os.FileInfo) (bool, error) {
	for {
		files, err := AuditFiles(r.path)
		if err != nil {
			return false, err
		}
		i := 0
		if prev != nil {
			if i = indexOfFile(files, prev) + 1; i == 0 {
				return false, nil // renamed since the listing: look again later
			}
		}
		if i >= len(files) {
			return false, nil
		}
		f, err := os.Open(files[i])
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return false, err
		}
		again, err := AuditFiles(r.path)
		if err != nil {
			f.Close()
			return false, err
		}
		j := 0
		if prev != nil {
			j = indexOfFile(again, prev) + 1
		}
		if j > 0 || prev == nil {
			if j < len(again) && sameFile(again[j], st) {
				r.close()
				r.f, r.off, r.pending = f, 0, nil
				return true, nil
			}
		}
		f.Close()
	}
}

// advance moves to the file after the current one, if there is one and
// the current one has nothing left; true means read again.
func (r *logReader) advance() (bool, error) {
	if len(r.pending) > 0 {
		return false, nil // a line is being written
	}
	// List first, then stat: a file rotated before the listing takes no
	// more writes, so its size now is final.
	files, err := AuditFiles(r.path)
	if err != nil {
		return false, err
	}
	cur, err := r.f.Stat()
	if err != nil {
		return false, err
	}
	i := indexOfFile(files, cur)
	switch {
	case i < 0 && linkCount(cur) == 0:
		return false, fmt.Errorf("audit log %s: the file being read was deleted", r.path)
	case i < 0:
		return false, nil // renamed since the listing: look again later
	case i == len(files)-1:
		return false, nil // the active file: wait for more
	case cur.Size() > r.off+int64(len(r.pending)):
		return true, nil // written before it was rotated: read that first
	}
	return r.openAfter(cur)
}

func indexOfFile(files []string, fi os.FileInfo) int {
	return slices.IndexFunc(files, func(p string) bool { return sameFile(p, fi) })
}

func sameFile(path string, fi os.FileInfo) bool {
	st, err := os.Stat(path)
	return err == nil && os.SameFile(st, fi)
}

// rest is how many bytes of the sink's files are not read yet.
func (r *logReader) rest() (int64, error) {
	files, err := AuditFiles(r.path)
	if err != nil {
		return 0, err
	}
	var cur os.FileInfo
	if r.f != nil {
		if cur, err = r.f.Stat(); err != nil {
			return 0, err
		}
	}
	var n int64
	after := cur == nil
	for _, p := range files {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		switch {
		case after:
			n += st.Size()
		case os.SameFile(st, cur):
			n += st.Size() - r.off
			after = true
		}
	}
	return n, nil
}

func (r *logReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// auditIDKey is how an audit id annotation starts in an event line.
var auditIDKey = []byte(`"` + AnnotationAuditID + `":"`)

// lineSeq reads the sequence number from a line's audit id without
// decoding the event; 0 if it has none.
func lineSeq(line []byte) uint64 {
	i := bytes.Index(line, auditIDKey)
	if i < 0 {
		return 0
	}
	v := line[i+len(auditIDKey):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return 0
	}
	v = v[:j]
	k := bytes.LastIndexByte(v, ':')
	if k < 0 {
		return 0
	}
	seq, err := strconv.ParseUint(string(v[k+1:]), 10, 64)
	if err != nil {
		return 0
	}
	return seq
}
