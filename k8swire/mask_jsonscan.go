package k8swire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// This file is a small validating JSON scanner that works on byte offsets,
// so the masker can replace single strings and leave every other byte of a
// body as the apiserver wrote it.

// maxJSONDepth bounds nesting, as encoding/json does.
const maxJSONDepth = 10000

// jsonSyntaxError is malformed JSON at an offset.
type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.off, e.msg)
}

func syntaxErr(off int, msg string) error { return &jsonSyntaxError{off, msg} }

// child is a member of an object (key is the key token, quotes included) or
// an element of an array (keyStart is -1), with its value's extent.
type child struct {
	keyStart, keyEnd int
	start, end       int
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue validates the value at b[i] and returns the offset after it.
// If rec is not nil and the value is an object or array, its members or
// elements are appended to *rec.
func scanValue(b []byte, i, depth int, rec *[]child) (int, error) {
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end")
	}
	switch c := b[i]; {
	case c == '{':
		return scanObject(b, i, depth+1, rec)
	case c == '[':
		return scanArray(b, i, depth+1, rec)
	case c == '"':
		return scanString(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	}
	return i, syntaxErr(i, fmt.Sprintf("unexpected %q", b[i]))
}

func scanObject(b []byte, i, depth int, rec *[]child) (int, error) {
	if depth > maxJSONDepth {
		return i, syntaxErr(i, "nested too deeply")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(i, "want a key")
		}
		keyStart := i
		keyEnd, err := scanString(b, i)
		if err != nil {
			return keyEnd, err
		}
		i = skipSpace(b, keyEnd)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr(i, "want ':'")
		}
		i = skipSpace(b, i+1)
		start := i
		if i, err = scanValue(b, i, depth, nil); err != nil {
			return i, err
		}
		if rec != nil {
			*rec = append(*rec, child{keyStart, keyEnd, start, i})
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, syntaxErr(i, "unexpected end in object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, syntaxErr(i, "want ',' or '}'")
		}
	}
}

func scanArray(b []byte, i, depth int, rec *[]child) (int, error) {
	if depth > maxJSONDepth {
		return i, syntaxErr(i, "nested too deeply")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		start := i
		var err error
		if i, err = scanValue(b, i, depth, nil); err != nil {
			return i, err
		}
		if rec != nil {
			*rec = append(*rec, child{-1, -1, start, i})
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, syntaxErr(i, "unexpected end in array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, syntaxErr(i, "want ',' or ']'")
		}
	}
}

// strPlain marks the bytes a string holds as they are: not a quote, a
// backslash or a control character.
var strPlain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// scanString validates the string starting at b[i] == '"'.
func scanString(b []byte, i int) (int, error) {
	j := i + 1
	for j < len(b) {
		for j < len(b) && strPlain[b[j]] {
			j++
		}
		if j == len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			if j+1 >= len(b) {
				return j, syntaxErr(j, "unexpected end in string")
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return j, syntaxErr(j, "unexpected end in string")
				}
				for _, h := range b[j+2 : j+6] {
					if !isHex(h) {
						return j, syntaxErr(j, "bad \\u escape")
					}
				}
				j += 6
			default:
				return j, syntaxErr(j, "bad escape")
			}
		default:
			return j, syntaxErr(j, "control character in string")
		}
	}
	return j, syntaxErr(j, "unexpected end in string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, syntaxErr(i, "bad literal")
	}
	return i + len(lit), nil
}

func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return i, syntaxErr(start, "bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return i, syntaxErr(start, "bad number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, syntaxErr(start, "bad number")
		}
	}
	return i, nil
}

// stringEnd finds the end of the already validated string at b[i].
func stringEnd(b []byte, i int) int {
	// Most strings are short: look at them byte by byte first.
	j := i + 1
	for stop := min(len(b), j+32); j < stop; j++ {
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
	if j >= len(b) {
		return len(b)
	}
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for q-1-n > i && b[q-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// skipChildren records the members or elements of the already validated
// object or array at b[i] and returns the offset after it.
func skipChildren(b []byte, i int, rec *[]child) int {
	closer := byte('}')
	if b[i] == '[' {
		closer = ']'
	}
	i = skipSpace(b, i+1)
	if b[i] == closer {
		return i + 1
	}
	for {
		keyStart, keyEnd := -1, -1
		if closer == '}' {
			keyStart, keyEnd = i, stringEnd(b, i)
			i = skipSpace(b, skipSpace(b, keyEnd)+1)
		}
		start := i
		i = skipValue(b, i)
		*rec = append(*rec, child{keyStart, keyEnd, start, i})
		i = skipSpace(b, i)
		if b[i] == closer {
			return i + 1
		}
		i = skipSpace(b, i+1) // the comma
	}
}

// skipValue returns the offset after the already validated value at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i // a number or literal
	for j < len(b) && b[j] != ',' && b[j] != ']' && b[j] != '}' && b[j] > ' ' {
		j++
	}
	return j
}

// decodeString returns the value of the validated string token raw,
// without copying when it has no escapes.
func decodeString(raw []byte) []byte {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return inner
	}
	return []byte(s)
}

// keyIs reports whether the key token raw names name: exactly, or if fold
// case-insensitively, the way encoding/json matches struct fields.
func keyIs(raw []byte, name []byte, fold bool) bool {
	k := raw[1 : len(raw)-1]
	if bytes.IndexByte(k, '\\') >= 0 {
		k = decodeString(raw)
	}
	if fold {
		return bytes.EqualFold(k, name)
	}
	return bytes.Equal(k, name)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json writes it.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
