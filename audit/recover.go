package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// recoverChain finds where the chain stands from the last event in the
// files, so that a restarted node goes on where it stopped. A line cut
// short by a crash at the end of the active file is removed first: it was
// never acknowledged, and the next line would run into it.
func (s *FileSink) recoverChain() error {
	files, err := AuditFiles(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("audit file sink: listing files: %w", err)
	}
	for i := len(files) - 1; i >= 0; i-- {
		line, err := lastLine(files[i], files[i] == s.cfg.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("audit file sink: %w", err)
		}
		if line == nil {
			continue
		}
		var ev struct {
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("audit file sink: the last event in %s is not JSON: %w", files[i], err)
		}
		if id := ev.Annotations[AnnotationAuditID]; id != "" {
			node, seq, err := ParseAuditID(id)
			if err != nil {
				return fmt.Errorf("audit file sink: the last event in %s: %w", files[i], err)
			}
			if node == s.cfg.Node {
				s.seq = seq
			}
		}
		// A file of another node, or from before chaining, starts a
		// new chain, still linked to what precedes it.
		s.prev = LineHash(line)
		if s.seq == 0 {
			s.prev = ""
		}
		break
	}
	if st, err := s.f.Stat(); err == nil {
		s.size = st.Size()
	}
	return nil
}

// lastLine returns the last complete line of the file at path (nil if it
// has none). If truncate is set, an incomplete last line is cut off.
func lastLine(path string, truncate bool) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	end, err := lastIndexBefore(f, st.Size(), '\n')
	if err != nil {
		return nil, err
	}
	if end+1 < st.Size() && truncate {
		if err := f.Truncate(end + 1); err != nil {
			return nil, fmt.Errorf("removing an incomplete last line from %s: %w", path, err)
		}
	}
	if end < 0 {
		return nil, nil
	}
	start, err := lastIndexBefore(f, end, '\n')
	if err != nil {
		return nil, err
	}
	line := make([]byte, end-start-1)
	if _, err := f.ReadAt(line, start+1); err != nil {
		return nil, err
	}
	return line, nil
}

// lastIndexBefore is the offset of the last c in f before end, or -1.
func lastIndexBefore(f *os.File, end int64, c byte) (int64, error) {
	chunk := make([]byte, 64<<10)
	for end > 0 {
		n := min(int64(len(chunk)), end)
		end -= n
		if _, err := f.ReadAt(chunk[:n], end); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk[:n], c); i >= 0 {
			return end + int64(i), nil
		}
	}
	return -1, nil
}

// firstLine returns the first line of the file at path.
func firstLine(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), nil
}
