//go:build faultinject

package normalizer

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// crashPoint exits the process, as a kill -9 would, at the point named by
// INVOICEHUB_FAULT_CRASH ("after-state-write:N": after the N-th state
// write). Only the fault suite's build (-tags faultinject) has it.
func crashPoint(name string) {
	point, n, _ := strings.Cut(os.Getenv("INVOICEHUB_FAULT_CRASH"), ":")
	if point != name {
		return
	}
	limit, err := strconv.ParseInt(n, 10, 64)
	if err == nil && crashCount.Add(1) == limit {
		os.Exit(137)
	}
}

var crashCount atomic.Int64
