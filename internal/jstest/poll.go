package jstest

import (
	"testing"
	"time"
)

// Eventually polls cond every 10ms until it returns true, and fails the
// test with msg if it has not within timeout. Tests wait with it instead of
// sleeping.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, 10*time.Millisecond, cond) {
		t.Fatalf("not within %v: %s", timeout, msg)
	}
}

// Poll calls cond every interval until it returns true (true) or timeout
// passes (false): for a wait whose end is counted, not a failure.
func Poll(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}
