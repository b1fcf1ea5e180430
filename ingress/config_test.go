package ingress

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	files := map[string]string{"/etc/sources.yaml": "sources:\n  - {provider: qonto, id: acme, secrets: [{env: S}]}\n"}
	c, err := LoadConfig(getenv(map[string]string{"INVOICEHUB_SOURCES_FILE": "/etc/sources.yaml", "S": "qonto-secret-of-32-characters-01", "INVOICEHUB_PUBLISH_TIMEOUT": "300ms"}), readFile(files))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || len(c.Sources) != 1 || c.Options.PublishTimeout != 300*time.Millisecond || c.Options.RetryAfter != time.Second {
		t.Fatalf("config %+v", c)
	}
	_, err = LoadConfig(getenv(map[string]string{"INVOICEHUB_PUBLISH_TIMEOUT": "fast", "INVOICEHUB_LOG_LEVEL": "x"}), readFile(nil))
	for _, want := range []string{"SOURCES_FILE is required", "PUBLISH_TIMEOUT", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}
