package normalizer

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"INVOICEHUB_CONCURRENCY": "8", "INVOICEHUB_STREAM_REPLICAS": "3", "INVOICEHUB_SHUTDOWN_GRACE": "7s"}
	c, err := LoadConfig(func(k string) string { return env[k] }, nil)
	if err != nil || c.Concurrency != 8 || c.MaxAttempts != 10 || c.Stage.Streams.Replicas != 3 {
		t.Fatalf("%+v %v", c, err)
	}
	if cc := c.ConsumeConfig(); cc.DrainTimeout != 7*time.Second || cc.AckWait != 5*time.Second {
		t.Fatalf("the consumer does not get the stage's settings: %+v", cc)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	env := map[string]string{"INVOICEHUB_CONCURRENCY": "0", "INVOICEHUB_LOG_LEVEL": "loud", "INVOICEHUB_RECEIVABLE_SOURCES": "mercoa"}
	_, err := LoadConfig(func(k string) string { return env[k] }, nil)
	for _, want := range []string{"INVOICEHUB_CONCURRENCY", "INVOICEHUB_LOG_LEVEL", "INVOICEHUB_RECEIVABLE_SOURCES"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

// TestDefaultConcurrency: the stage's default and a Config built in code
// (invoicehub dev) run DefaultConcurrency deliveries at once.
func TestDefaultConcurrency(t *testing.T) {
	c, err := LoadConfig(func(string) string { return "" }, nil)
	if err != nil || c.Concurrency != DefaultConcurrency {
		t.Fatalf("LoadConfig: concurrency %d, %v", c.Concurrency, err)
	}
	if got := (Config{}).ConsumeConfig().Concurrency; got != DefaultConcurrency {
		t.Fatalf("Config{}: concurrency %d, want %d", got, DefaultConcurrency)
	}
}
