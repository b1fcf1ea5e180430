package normalizer

import "testing"

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig(func(k string) string { return map[string]string{"INVOICEHUB_CONCURRENCY": "8"}[k] })
	if err != nil || c.Concurrency != 8 || c.MaxAttempts != 10 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := LoadConfig(func(k string) string { return "0" }); err == nil {
		t.Fatal("zero concurrency accepted")
	}
}
