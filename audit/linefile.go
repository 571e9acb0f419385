package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// recordFile is what a recording writes to: an *os.File, or a failing one
// in tests.
type recordFile interface {
	io.Writer
	Sync() error
	Close() error
}

// createFile creates path for a new recording file. It refuses to replace
// an existing file: a recording is evidence, and a reused session id must
// not overwrite one.
func createFile(path string) (recordFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
}

// lineFile is one buffered file of JSON lines. Its buffer is borrowed
// from a pool while bytes wait in it, and given back when a timed flush
// empties it: an idle session holds none (an idle attach session held
// 64 KiB for its .cast alone). The buffer borrowed first is a small one;
// it is traded for one of the full size when it fills, or for an event
// longer than shortEventData.
type lineFile struct {
	path string
	f    recordFile
	dst  io.Writer     // f, or f and sum
	size int           // the full buffer's size
	w    *bufio.Writer // nil while nothing is buffered after a release
	sum  hash.Hash     // SHA-256 of what reached f; nil when not wanted
}

// smallBuffer is the size of the buffer a file borrows first, and
// shortEventData the longest event data written through it. Interactive
// output comes in short events (an echoed line, a prompt), and thousands
// of attach sessions that all receive a line at once each held a full
// buffer until their timed flush: 2,000 sessions of a benchmark held
// 90 MiB of them.
const (
	smallBuffer    = 4 << 10
	shortEventData = 512 // escaped at worst with the line around, it fits smallBuffer
)

// writerPools hold idle bufio.Writers, one pool per buffer size.
var writerPools sync.Map // int -> *sync.Pool

func writerPool(size int) *sync.Pool {
	if p, ok := writerPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := writerPools.LoadOrStore(size, &sync.Pool{New: func() any { return bufio.NewWriterSize(nil, size) }})
	return p.(*sync.Pool)
}

// buf is the file's buffered writer; a small one is borrowed from the
// pool if it has none.
func (l *lineFile) buf() *bufio.Writer {
	if l.w == nil {
		l.borrow(min(smallBuffer, l.size))
	}
	return l.w
}

func (l *lineFile) borrow(size int) {
	l.w = writerPool(size).Get().(*bufio.Writer)
	l.w.Reset(l.dst)
}

// full gives the file a buffer of the full size, giving back (after
// flushing) the small one it holds.
func (l *lineFile) full() error {
	if l.w != nil && l.w.Size() >= l.size {
		return nil
	}
	if err := l.release(); err != nil {
		return err
	}
	l.borrow(l.size)
	return nil
}

// buffered is how many bytes wait in the buffer.
func (l *lineFile) buffered() int {
	if l.w == nil {
		return 0
	}
	return l.w.Buffered()
}

// flush writes what is buffered to the file.
func (l *lineFile) flush() error {
	if l.w == nil {
		return nil
	}
	return l.w.Flush()
}

// release flushes and gives the buffer back to the pool.
func (l *lineFile) release() error {
	if err := l.flush(); err != nil || l.w == nil {
		return err
	}
	l.w.Reset(nil)
	writerPool(l.w.Size()).Put(l.w)
	l.w = nil
	return nil
}

func openLineFile(create func(string) (recordFile, error), path string, size int, hashed bool) (*lineFile, error) {
	f, err := create(path)
	if err != nil {
		return nil, err
	}
	l := &lineFile{path: path, f: f, dst: f, size: size}
	if hashed {
		l.sum = sha256.New()
		l.dst = hashingWriter{f, l.sum}
	}
	return l, nil
}

// hexSum returns the hex SHA-256 of the bytes written so far.
func (l *lineFile) hexSum() string {
	return hex.EncodeToString(l.sum.Sum(nil))
}

// close flushes, syncs and closes the file, and returns the first error.
// It closes the file whatever happens before.
func (l *lineFile) close() error {
	err := l.release()
	if err == nil {
		err = l.f.Sync()
	}
	return errors.Join(err, l.f.Close())
}

// reserve makes room for n bytes in the buffer, flushing it if needed.
// A small buffer that fills is traded for a full one: the stream is busy.
func (l *lineFile) reserve(n int) error {
	if l.buf().Available() >= n {
		return nil
	}
	if l.w.Size() < l.size {
		return l.full()
	}
	return l.w.Flush()
}

// reserveEvent is reserve for a line of n bytes besides its event data of
// dataLen bytes. Short data is reserved for whole, escaped at worst, so
// that short events filling a small buffer trade it for a full one; longer
// data gets a full buffer at once.
func (l *lineFile) reserveEvent(n, dataLen int) error {
	if dataLen <= shortEventData {
		return l.reserve(n + maxEscape*dataLen)
	}
	if err := l.full(); err != nil {
		return err
	}
	return l.reserve(n)
}

// writeStderrLine writes a stderr sidecar line: [t, "<base64 of p>"].
func (l *lineFile) writeStderrLine(d time.Duration, p []byte) error {
	if err := l.reserve(32); err != nil {
		return err
	}
	buf := append(l.buf().AvailableBuffer(), '[')
	buf = appendSeconds(buf, d)
	buf = append(buf, ", \""...)
	if _, err := l.w.Write(buf); err != nil {
		return err
	}
	return l.writeBase64Tail(p)
}

// writeRawLine writes a raw sidecar line for the index'th event of the
// .cast: [index, t, "code", "<base64 of the event's bytes>"].
func (l *lineFile) writeRawLine(index int, d time.Duration, code string, parts ...[]byte) error {
	if err := l.reserve(64); err != nil {
		return err
	}
	buf := append(l.buf().AvailableBuffer(), '[')
	buf = strconv.AppendInt(buf, int64(index), 10)
	buf = append(buf, ", "...)
	buf = appendTimeCode(buf, d, code)
	if _, err := l.w.Write(buf); err != nil {
		return err
	}
	return l.writeBase64Tail(parts...)
}

// writeBase64Tail writes base64 of the concatenated parts, then closes the
// JSON string, the array and the line.
func (l *lineFile) writeBase64Tail(parts ...[]byte) error {
	enc := base64.NewEncoder(base64.StdEncoding, l.buf())
	for _, p := range parts {
		if _, err := enc.Write(p); err != nil {
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := l.w.WriteString(eventSuffix)
	return err
}

type hashingWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}
