//go:build !faultinject

package normalizer

// crashPoint marks where the fault suite may kill the normalizer (built
// with -tags faultinject); in a normal build it does nothing.
func crashPoint(string) {}
