package ingress

import (
	"os"
	"strings"
	"testing"
	"time"
)

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func readFile(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if c, ok := files[p]; ok {
			return []byte(c), nil
		}
		return nil, os.ErrNotExist
	}
}

func TestParseSources(t *testing.T) {
	yaml := `
sources:
  - provider: qonto
    id: acme
    secrets:
      - env: QONTO_ACME
      - file: /run/secrets/old
    tolerance: 2m
    max_body: 2048
  - provider: qonto
    id: beta
    secrets: [{env: QONTO_BETA}]
`
	srcs, err := ParseSources(strings.NewReader(yaml),
		getenv(map[string]string{"QONTO_ACME": "s1", "QONTO_BETA": "s3"}),
		readFile(map[string]string{"/run/secrets/old": "s2\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 {
		t.Fatalf("%d sources", len(srcs))
	}
	a := srcs[0]
	if a.Provider != "qonto" || a.ID != "acme" || a.MaxBody != 2048 || a.Credentials.Tolerance != 2*time.Minute ||
		len(a.Credentials.Secrets) != 2 || string(a.Credentials.Secrets[1].Bytes()) != "s2" {
		t.Fatalf("source %+v", a)
	}
	if b := srcs[1]; b.MaxBody != DefaultMaxBody || b.Credentials.Tolerance != DefaultTolerance {
		t.Fatalf("defaults not applied: %+v", b)
	}
}

func TestParseSourcesReportsEveryProblem(t *testing.T) {
	yaml := `
sources:
  - provider: stripe
    id: Bad.Id
    secrets: []
  - provider: qonto
    id: acme
    secrets: [{env: UNSET}, {file: /missing}, {env: A, file: /b}, {}]
    tolerance: forever
    max_body: -1
  - provider: qonto
    id: acme
    secrets: [{env: SET}]
`
	_, err := ParseSources(strings.NewReader(yaml), getenv(map[string]string{"SET": "x"}), readFile(nil))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{
		`unknown provider "stripe"`, "id must be", "no secrets", "UNSET is empty or unset", "/missing",
		"not both", "needs env or file", `tolerance "forever"`, "max_body -1", "declared twice",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestParseSourcesRefusesInlineSecrets(t *testing.T) {
	yaml := "sources:\n  - provider: qonto\n    id: acme\n    secrets: [{value: hunter2}]\n"
	_, err := ParseSources(strings.NewReader(yaml), getenv(nil), readFile(nil))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("inline secret accepted or echoed: %v", err)
	}
}
