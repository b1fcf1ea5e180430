package builtin

import (
	"slices"
	"strings"
	"testing"

	"github.com/invoicehub/invoicehub/sinks"
)

func TestRegistryHoldsEveryBuiltIn(t *testing.T) {
	if got := Registry().Types(); !slices.Equal(got, []string{"file", "http", "sql", "stdout"}) {
		t.Fatalf("types %v", got)
	}
	if Registry() == Registry() {
		t.Fatal("registries must be fresh, not shared state")
	}
}

// TestMisspeltOrMistypedOptionsFailAtStart: every built-in sink decodes
// its options strictly; the sinks file's mistakes stop the start, naming
// the sink and the option.
func TestMisspeltOrMistypedOptionsFailAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		spec sinks.Spec
		want string
	}{
		{sinks.Spec{ID: "archive", Type: "file", Options: sinks.Options{"path": dir + "/a.jsonl", "fsnyc": "never"}}, "fsnyc"},
		{sinks.Spec{ID: "hook", Type: "http", Options: sinks.Options{"url": "https://example.com/hook", "timout": "2s"}}, "timout"},
		{sinks.Spec{ID: "hook", Type: "http", Options: sinks.Options{"url": "https://example.com/hook", "allow_private": "maybe"}}, "allow_private"},
		{sinks.Spec{ID: "hook", Type: "http", Options: sinks.Options{"url": "https://example.com/hook", "timeout": 2}}, "timeout"},
		{sinks.Spec{ID: "ledger", Type: "sql", Options: sinks.Options{"driver": "sqlite", "dns": dir + "/x.db"}}, "dns"},
		{sinks.Spec{ID: "out", Type: "stdout", Options: sinks.Options{"path": "/dev/null"}}, "path"},
	} {
		t.Run(tc.spec.ID+"/"+tc.want, func(t *testing.T) {
			_, err := Registry().New(t.Context(), tc.spec, sinks.Deps{})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), `"`+tc.spec.ID+`"`) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the sink and %q", err, tc.want)
			}
		})
	}
}
