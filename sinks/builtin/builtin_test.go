package builtin

import (
	"slices"
	"testing"
)

func TestRegistryHoldsEveryBuiltIn(t *testing.T) {
	if got := Registry().Types(); !slices.Equal(got, []string{"file", "http", "sql", "stdout"}) {
		t.Fatalf("types %v", got)
	}
	if Registry() == Registry() {
		t.Fatal("registries must be fresh, not shared state")
	}
}
