package stage

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) Env { return func(k string) string { return vars[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://127.0.0.1:4222" || c.LogLevel != slog.LevelInfo || !c.LogJSON || c.MetricsAddr != ":9090" ||
		c.Streams.Replicas != 1 || c.Streams.DuplicateWindow != 2*time.Minute || c.ShutdownGrace != 25*time.Second {
		t.Fatalf("defaults %+v", c)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{
		"INVOICEHUB_LOG_LEVEL": "loud", "INVOICEHUB_LOG_FORMAT": "xml", "INVOICEHUB_STREAM_REPLICAS": "9",
		"INVOICEHUB_DUPLICATE_WINDOW": "-1s", "INVOICEHUB_SHUTDOWN_GRACE": "soon", "INVOICEHUB_NATS_USER": "ingress",
	}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"LOG_LEVEL", "LOG_FORMAT", "STREAM_REPLICAS", "DUPLICATE_WINDOW", "SHUTDOWN_GRACE", "PASSWORD_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}
