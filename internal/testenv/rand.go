package testenv

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// randomString returns n characters of crypto-random lowercase base32.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))[:n]
}
