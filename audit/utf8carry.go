package audit

import "unicode/utf8"

// smallChunk is the size of the scratch array utf8Carry.split works in.
const smallChunk = 16

// utf8Carry holds back the start of a multi-byte UTF-8 sequence that a
// chunk of one stream ended in, so the next chunk of the same stream
// completes it instead of both halves turning into U+FFFD. It holds at most
// utf8.UTFMax-1 bytes.
type utf8Carry struct {
	buf [utf8.UTFMax - 1]byte
	n   int
}

// split takes the stream's next chunk p and returns the bytes to record
// now, as head followed by body: head is the carried bytes plus at most a
// few bytes of p, built in scratch; body aliases the rest of p, so a huge
// chunk is never copied. The incomplete sequence p ends in, if any, is kept
// for the next call. head followed by body decodes exactly as the stream
// would decode whole: every cut falls where a rune starts, or where no
// valid sequence can cross it.
func (c *utf8Carry) split(p []byte, scratch *[smallChunk]byte) (head, body []byte) {
	if c.n+len(p) <= len(scratch) {
		head = append(scratch[:0], c.buf[:c.n]...)
		head = append(head, p...)
		k := tailStart(head)
		c.n = copy(c.buf[:], head[k:])
		return head[:k], nil
	}
	// p is longer than utf8.UTFMax*3 here. Complete the carried sequence
	// with the continuation bytes p starts with: after three of them no
	// sequence that started in the carry can go on.
	j := 0
	if c.n > 0 {
		for j < utf8.UTFMax-1 && !utf8.RuneStart(p[j]) {
			j++
		}
	}
	head = append(scratch[:0], c.buf[:c.n]...)
	head = append(head, p[:j]...)
	body = p[j:]
	k := tailStart(body)
	c.n = copy(c.buf[:], body[k:])
	return head, body[:k]
}

// take returns the carried bytes, which no later chunk will complete, and
// empties the carry.
func (c *utf8Carry) take() []byte {
	b := append([]byte(nil), c.buf[:c.n]...)
	c.n = 0
	return b
}

// tailStart returns where the incomplete UTF-8 sequence p ends in begins: a
// rune start among the last three bytes whose bytes are a proper prefix of
// a valid encoding. It returns len(p) if p ends in no such sequence.
func tailStart(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return i
			}
			break
		}
	}
	return len(p)
}
