package consume

import (
	"context"
	"errors"
	"sync"
)

// RunAll runs each of runs at once until ctx ends or one returns an error,
// which stops the others (their context ends): a process running several
// consumers exits, and says why, rather than running on without one. It
// returns when all have returned, with their errors joined.
func RunAll(ctx context.Context, runs ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, run := range runs {
		wg.Go(func() {
			if errs[i] = run(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
