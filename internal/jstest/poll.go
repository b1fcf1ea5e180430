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
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
