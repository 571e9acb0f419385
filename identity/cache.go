package identity

import (
	"container/list"
	"sync"
	"time"
)

// maxCacheTTL caps how long a verified token is remembered, however distant
// its exp: a key the issuer withdraws stops working within this time.
const maxCacheTTL = 5 * time.Minute

// tokenKey is the SHA-256 of a token: the cache never holds tokens.
type tokenKey = [32]byte

// tokenCache remembers verified tokens' principals until an expiry, dropping
// the least recently used beyond its size. It is safe for concurrent use.
type tokenCache struct {
	mu      sync.Mutex
	size    int
	order   *list.List // of *cacheEntry, most recently used first
	entries map[tokenKey]*list.Element
}

type cacheEntry struct {
	key     tokenKey
	p       *Principal // never handed out; get returns copies
	expires time.Time
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{size: size, order: list.New(), entries: make(map[tokenKey]*list.Element)}
}

// get returns a copy of the principal cached under key, if it has not
// expired at now. An expired entry is dropped.
func (c *tokenCache) get(key tokenKey, now time.Time) (*Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.p.Clone(), true
}

// put caches p under key until expires, evicting the least recently used
// entry if the cache is full. The cache keeps p: the caller must not
// modify it afterwards.
func (c *tokenCache) put(key tokenKey, p *Principal, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		e.p, e.expires = p, expires
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.size {
		c.remove(c.order.Back())
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, p: p, expires: expires})
}

func (c *tokenCache) remove(el *list.Element) {
	c.order.Remove(el)
	delete(c.entries, el.Value.(*cacheEntry).key)
}

// len returns the number of entries, expired or not.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
