package digest

import (
	"container/list"
	"sync"
	"time"
)

// onceOnly is the nonce-count recorded for a qop-less (RFC 2069) use: it is
// above every 32-bit nc, so the nonce can never be used again.
const onceOnly = 1 << 32

// nonceTable remembers, for nonces that authenticated successfully, the
// highest nonce-count seen. Entries live as long as their nonce is fresh;
// the table never holds more than max entries.
type nonceTable struct {
	mu    sync.Mutex
	max   int
	ttl   int64 // nanoseconds
	m     map[string]*list.Element
	order *list.List // of *nonceEntry, in order of first use
	// Nonces with a timestamp <= floor are answered stale: an unexpired
	// entry was evicted to bound memory, and forgetting it must not make its
	// nonce replayable.
	floor    int64
	hasFloor bool
}

type nonceEntry struct {
	nonce string
	ts    int64 // unix nanoseconds, from the nonce
	nc    uint64
}

func newNonceTable(max int, ttl time.Duration) *nonceTable {
	return &nonceTable{max: max, ttl: int64(ttl), m: make(map[string]*list.Element), order: list.New()}
}

func (t *nonceTable) expired(e *nonceEntry, now int64) bool { return now-e.ts > t.ttl }

// use records a successful use of nonce (issued at ts) with count nc. It
// fails with ErrReplay when nc does not exceed the highest count seen, and
// with ErrStaleNonce when the nonce is older than an evicted entry.
func (t *nonceTable) use(nonce string, ts int64, nc uint64, now time.Time) error {
	n := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.m[nonce]; ok {
		e := el.Value.(*nonceEntry)
		if nc <= e.nc || nc == onceOnly { // a qop-less use must be the first
			return ErrReplay
		}
		e.nc = nc
		return nil
	}
	if t.hasFloor && ts <= t.floor {
		return ErrStaleNonce
	}
	// Drop expired entries from the front, then the oldest while full.
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		e := el.Value.(*nonceEntry)
		if !t.expired(e, n) && t.order.Len() < t.max {
			break
		}
		if !t.expired(e, n) && (!t.hasFloor || e.ts > t.floor) {
			t.floor, t.hasFloor = e.ts, true
		}
		t.order.Remove(el)
		delete(t.m, e.nonce)
	}
	if t.hasFloor && ts <= t.floor {
		return ErrStaleNonce // older than what we just had to forget
	}
	t.m[nonce] = t.order.PushBack(&nonceEntry{nonce: nonce, ts: ts, nc: nc})
	return nil
}

func (t *nonceTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// limiter counts failed attempts per source and blocks sources that fail
// too often. Sources are kept in least-recently-failed order and bounded.
type limiter[K comparable] struct {
	mu          sync.Mutex
	maxFailures int
	window      time.Duration
	backoff     time.Duration
	maxBackoff  time.Duration
	max         int
	m           map[K]*list.Element
	order       *list.List // of *sourceState[K], least recently failed first
}

type sourceState[K comparable] struct {
	key          K
	count        int       // failures in the current window
	windowStart  time.Time // start of the current window
	blockedUntil time.Time // zero when never blocked
	backoff      time.Duration
}

func newLimiter[K comparable](maxFailures int, window, backoff, maxBackoff time.Duration, max int) *limiter[K] {
	return &limiter[K]{
		maxFailures: maxFailures, window: window, backoff: backoff, maxBackoff: maxBackoff, max: max,
		m: make(map[K]*list.Element), order: list.New(),
	}
}

func (l *limiter[K]) blocked(key K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.m[key]
	return ok && now.Before(el.Value.(*sourceState[K]).blockedUntil)
}

// idle reports whether s carries no information any more: not blocked, its
// window over, and its back-off forgiven.
func (l *limiter[K]) idle(s *sourceState[K], now time.Time) bool {
	return !now.Before(s.blockedUntil) &&
		now.Sub(s.windowStart) >= l.window &&
		(s.backoff == 0 || now.Sub(s.blockedUntil) >= l.maxBackoff)
}

func (l *limiter[K]) failure(key K, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s *sourceState[K]
	if el, ok := l.m[key]; ok {
		s = el.Value.(*sourceState[K])
		l.order.MoveToBack(el)
	} else {
		for el := l.order.Front(); el != nil; el = l.order.Front() {
			if l.order.Len() < l.max && !l.idle(el.Value.(*sourceState[K]), now) {
				break
			}
			l.order.Remove(el)
			delete(l.m, el.Value.(*sourceState[K]).key)
		}
		s = &sourceState[K]{key: key, windowStart: now}
		l.m[key] = l.order.PushBack(s)
	}
	if now.Before(s.blockedUntil) {
		return // raced with the block; it already counts
	}
	if s.backoff > 0 && now.Sub(s.blockedUntil) >= l.maxBackoff {
		s.backoff = 0 // quiet long enough since the last block: forgiven
	}
	if now.Sub(s.windowStart) >= l.window || now.Before(s.windowStart) {
		s.count, s.windowStart = 0, now
	}
	s.count++
	threshold := l.maxFailures
	if s.backoff > 0 {
		threshold = 1 // still failing after a block: block again, longer
	}
	if s.count < threshold {
		return
	}
	if s.backoff == 0 {
		s.backoff = l.backoff
	} else {
		s.backoff = min(2*s.backoff, l.maxBackoff)
	}
	s.blockedUntil = now.Add(s.backoff)
	s.count, s.windowStart = 0, now
}

func (l *limiter[K]) success(key K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.m[key]; ok {
		l.order.Remove(el)
		delete(l.m, key)
	}
}

func (l *limiter[K]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
