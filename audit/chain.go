package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Tamper evidence: every event a node writes carries its place in the
// node's chain in two annotations, set before the event is encoded:
//
//   - AnnotationAuditID, "<node>:<seq>": the node's name and the event's
//     sequence number, from 1, one more than the event before;
//   - AnnotationAuditPrev, the hex SHA-256 of the previous event's line
//     (its exact JSON bytes, without the newline), "" for seq 1.
//
// An event's line is written once and never re-encoded: the local file,
// the webhook and object storage all receive the same bytes, so the chain
// verifies wherever the events are read (VerifyChain). A changed byte
// breaks the link to the next event, a missing event leaves a gap in the
// sequence, and a reordered one breaks both.
const (
	AnnotationAuditID   = "kubegate.dev/audit-id"
	AnnotationAuditPrev = "kubegate.dev/audit-prev"
)

// LineHash is the chain hash of an event line: the hex SHA-256 of its
// bytes, without the trailing newline.
func LineHash(line []byte) string {
	line = trimNewline(line)
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// FormatAuditID is AnnotationAuditID's value for node and seq.
func FormatAuditID(node string, seq uint64) string {
	return node + ":" + strconv.FormatUint(seq, 10)
}

// ParseAuditID splits an AnnotationAuditID value into node and seq.
func ParseAuditID(id string) (node string, seq uint64, err error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("audit id %q: want NODE:SEQ", id)
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, fmt.Errorf("audit id %q: want NODE:SEQ with SEQ from 1", id)
	}
	return id[:i], seq, nil
}
