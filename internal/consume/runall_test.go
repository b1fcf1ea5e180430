package consume

import (
	"context"
	"errors"
	"testing"
)

func TestRunAllStopsTheOthersOnTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	waitForStop := func(ctx context.Context) error { <-ctx.Done(); return nil } // stops only when told
	err := RunAll(t.Context(), waitForStop, func(context.Context) error { return boom }, waitForStop)
	if !errors.Is(err, boom) {
		t.Fatalf("RunAll = %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := RunAll(ctx, waitForStop, waitForStop); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	if err := RunAll(t.Context()); err != nil {
		t.Fatalf("nothing to run: %v", err)
	}
}
