package agentcred

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tokenCache keeps one token per key as a 0600 file in dir, so that each
// short-lived `kubegate token` process can reuse the previous one's token.
type tokenCache struct {
	dir string
}

// cacheKey names the cache file of a login: a hash of everything that
// decides which token the issuer returns, so that no name or URL appears in
// the file name. Scopes are part of it, as they change the token's claims.
func cacheKey(issuer, clientID, username string, scopes []string) string {
	h := sha256.New()
	for _, s := range []string{issuer, clientID, username, strings.Join(scopes, " ")} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c tokenCache) path(key string) string {
	return filepath.Join(c.dir, key+".token")
}

// load returns the cached token for key and its expiry. ok is false when
// there is none or it cannot be read as a JWT with an exp claim; a broken
// entry is simply replaced by the next store.
func (c tokenCache) load(key string) (token string, expiry time.Time, ok bool, err error) {
	b, err := os.ReadFile(c.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("reading token cache: %w", err)
	}
	token = strings.TrimSpace(string(b))
	expiry, err = jwtExpiry(token)
	if err != nil || expiry.IsZero() {
		return "", time.Time{}, false, nil
	}
	return token, expiry, true, nil
}

// store saves token under key, creating the directory (0700) if needed.
func (c tokenCache) store(key, token string) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("creating token cache: %w", err)
	}
	if err := writeFileAtomic(c.path(key), []byte(token)); err != nil {
		return fmt.Errorf("writing token cache: %w", err)
	}
	return nil
}

// DefaultCacheDir is where `kubegate token` caches ID tokens when no
// --cache-dir is given: $XDG_CACHE_HOME/kubegate/tokens, or
// ~/.cache/kubegate/tokens (on Linux; os.UserCacheDir elsewhere).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kubegate", "tokens"), nil
}
