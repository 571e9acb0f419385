package raftnode

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns an hclog.Logger for Raft that passes its warnings
// and errors on to log.
func newHCLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Warn,
		Output:      slogWriter{log},
		JSONFormat:  true,
		DisableTime: true,
	})
}

// slogWriter takes hclog's JSON lines and logs each one to a slog.Logger:
// "@message" is the message, "@level" the level, "@module" becomes
// "module", and the other fields become attributes.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.logLine(bytes.TrimSpace(line))
	}
	return len(p), nil
}

func (w slogWriter) logLine(line []byte) {
	if len(line) == 0 {
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(line, &fields); err != nil {
		w.log.Warn(string(line), "module", "raft")
		return
	}
	level := slog.LevelWarn
	if fields["@level"] == "error" {
		level = slog.LevelError
	}
	msg, _ := fields["@message"].(string)
	attrs := []slog.Attr{slog.Any("module", fields["@module"])}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
}
