package gateway

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound what one principal may take of the gateway. The zero value
// is the defaults; a negative value turns a limit off.
type Limits struct {
	// RequestsPerSecond is each principal's sustained request rate (a
	// token bucket). Zero means 100; negative means no rate limit.
	RequestsPerSecond float64
	// Burst is how many requests a principal may make at once above its
	// rate. Zero means 3 × RequestsPerSecond, at least 1.
	Burst int
	// MaxStreams bounds each principal's concurrent long-running requests:
	// exec, attach and port-forward sessions, watches and followed logs.
	// Zero means 128; negative means no limit.
	MaxStreams int
}

// withDefaults fills in the zero values.
func (l Limits) withDefaults() Limits {
	if l.RequestsPerSecond == 0 {
		l.RequestsPerSecond = 100
	}
	if l.Burst == 0 && l.RequestsPerSecond > 0 {
		l.Burst = max(1, int(math.Ceil(3*l.RequestsPerSecond)))
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = 128
	}
	return l
}

// Refusals of the limits, turned into 429 replies by statusFor.
var (
	// ErrRateLimited is a request over its principal's rate.
	ErrRateLimited = errors.New("request rate limit exceeded")
	// ErrTooManyStreams is a long-running request over its principal's
	// concurrent streams.
	ErrTooManyStreams = errors.New("concurrent streams limit exceeded")
)

// limitError is a refusal by a limit, with when to try again.
type limitError struct {
	err        error
	retryAfter time.Duration // zero: no advice
	msg        string
}

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return e.err }

// retryAfterSeconds is the Retry-After of err, in whole seconds (at least
// one), or 0 when err is not a limit's refusal with advice.
func retryAfterSeconds(err error) int {
	var le *limitError
	if !errors.As(err, &le) || le.retryAfter <= 0 {
		return 0
	}
	return max(1, int(math.Ceil(le.retryAfter.Seconds())))
}

// limiterShards spreads principals over independently locked maps, so
// that requests of different principals rarely wait for one lock.
const limiterShards = 64

// sweepEvery is how often a shard drops the state of principals it no
// longer needs to remember.
const sweepEvery = time.Minute

// limiter keeps each principal's token bucket and open streams.
type limiter struct {
	limits Limits
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

type limiterShard struct {
	mu        sync.Mutex
	byKey     map[string]*principalLimits
	nextSweep time.Time
}

type principalLimits struct {
	bucket  *rate.Limiter // nil without a rate limit
	streams int
}

func newLimiter(l Limits) *limiter {
	lim := &limiter{limits: l.withDefaults(), seed: maphash.MakeSeed()}
	for i := range lim.shards {
		lim.shards[i].byKey = map[string]*principalLimits{}
	}
	return lim
}

func (l *limiter) shard(key string) *limiterShard {
	return &l.shards[maphash.String(l.seed, key)%limiterShards]
}

// entry returns key's state, creating it; the shard's lock is held.
func (l *limiter) entry(s *limiterShard, key string, now time.Time) *principalLimits {
	if now.After(s.nextSweep) {
		s.sweep(now)
		s.nextSweep = now.Add(sweepEvery)
	}
	p := s.byKey[key]
	if p == nil {
		p = &principalLimits{}
		if l.limits.RequestsPerSecond > 0 {
			p.bucket = rate.NewLimiter(rate.Limit(l.limits.RequestsPerSecond), l.limits.Burst)
		}
		s.byKey[key] = p
	}
	return p
}

// sweep forgets principals with no open stream and a full bucket: a new
// entry for them would be the same.
func (s *limiterShard) sweep(now time.Time) {
	for k, p := range s.byKey {
		if p.streams == 0 && (p.bucket == nil || p.bucket.TokensAt(now) >= float64(p.bucket.Burst())) {
			delete(s.byKey, k)
		}
	}
}

// allow takes one request from key's bucket, or says how long until one
// is available.
func (l *limiter) allow(key string, now time.Time) error {
	if l.limits.RequestsPerSecond < 0 {
		return nil
	}
	s := l.shard(key)
	s.mu.Lock()
	p := l.entry(s, key, now)
	if p.bucket.AllowN(now, 1) {
		s.mu.Unlock()
		return nil
	}
	wait := time.Duration((1 - p.bucket.TokensAt(now)) / l.limits.RequestsPerSecond * float64(time.Second))
	s.mu.Unlock()
	return &limitError{err: ErrRateLimited, retryAfter: wait, msg: fmt.Sprintf(
		"%v: user %q may make %g requests per second (bursts of %d); retry after %s",
		ErrRateLimited, key, l.limits.RequestsPerSecond, l.limits.Burst, wait.Round(time.Millisecond))}
}

// openStream counts a long-running request of key, or refuses it when
// key has MaxStreams open. The returned func ends it.
func (l *limiter) openStream(key string, now time.Time) (func(), error) {
	if l.limits.MaxStreams < 0 {
		return func() {}, nil
	}
	s := l.shard(key)
	s.mu.Lock()
	p := l.entry(s, key, now)
	if p.streams >= l.limits.MaxStreams {
		s.mu.Unlock()
		return nil, &limitError{err: ErrTooManyStreams, msg: fmt.Sprintf(
			"%v: user %q has %d exec, attach, port-forward, watch or log-follow streams open, the most allowed; close one first",
			ErrTooManyStreams, key, l.limits.MaxStreams)}
	}
	p.streams++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			p.streams--
			s.mu.Unlock()
		})
	}, nil
}
