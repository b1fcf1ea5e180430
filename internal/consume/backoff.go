package consume

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces out retries of a failed delivery: exponential with full
// jitter (a uniform wait in [0, min(Max, Base·2^(attempt−1))]), so that many
// failing messages do not retry in lockstep.
type Backoff struct {
	// Base is the ceiling of the first retry's wait. Default 1s.
	Base time.Duration
	// Max caps the ceiling. Default 5m.
	Max time.Duration
	// MaxRetryAfter caps a Retry-After hint. Default 1h.
	MaxRetryAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Minute
	}
	if b.MaxRetryAfter <= 0 {
		b.MaxRetryAfter = time.Hour
	}
	return b
}

// Delay returns the wait before the retry that follows failed attempt
// number attempt (1 for the first delivery). A positive hint (Retry-After,
// capped at MaxRetryAfter) is a floor: the wait is the longer of the hint
// and the backoff's, so a receiver that keeps asking for a short wait
// still sees the backoff grow.
func (b Backoff) Delay(attempt uint64, hint time.Duration) time.Duration {
	b = b.withDefaults()
	ceiling := b.Max
	if attempt < 1 {
		attempt = 1
	}
	if shift := attempt - 1; shift < 32 {
		if c := b.Base << shift; c > 0 && c < b.Max {
			ceiling = c
		}
	}
	return max(rand.N(ceiling+1), min(hint, b.MaxRetryAfter))
}
