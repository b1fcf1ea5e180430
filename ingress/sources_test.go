package ingress

import (
	"encoding/base64"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/stage"
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

// qontoSecret is a secret of the length Qonto's secrets have (32 to 128).
func qontoSecret(tag string) string { return "qonto-secret-0123456789abcdef-" + tag + "-" + tag }

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
	srcs, err := parseSources(strings.NewReader(yaml),
		getenv(map[string]string{"QONTO_ACME": qontoSecret("1"), "QONTO_BETA": qontoSecret("3")}),
		readFile(map[string]string{"/run/secrets/old": qontoSecret("2") + "\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 {
		t.Fatalf("%d sources", len(srcs))
	}
	a := srcs[0]
	if a.Provider != "qonto" || a.ID != "acme" || a.MaxBody != 2048 || a.Credentials.Tolerance != 2*time.Minute ||
		len(a.Credentials.Secrets) != 2 || string(a.Credentials.Secrets[1].Bytes()) != qontoSecret("2") {
		t.Fatalf("source %+v", a)
	}
	if b := srcs[1]; b.MaxBody != 0 || b.Credentials.Tolerance != DefaultTolerance { // 0: what fits NATS, see New
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
	_, err := parseSources(strings.NewReader(yaml), getenv(map[string]string{"SET": "x"}), readFile(nil))
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
	_, err := parseSources(strings.NewReader(yaml), getenv(nil), readFile(nil))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("inline secret accepted or echoed: %v", err)
	}
}

func TestParseSourcesModes(t *testing.T) {
	yaml := `
sources:
  - {provider: rillet, id: r, secrets: [{env: RILLET}]}
  - {provider: rillet, id: r-raw, mode: raw, secrets: [{env: RILLET}]}
  - {provider: mercoa, id: m, secrets: [{env: WHSEC}]}
  - {provider: mercoa, id: m-h, mode: header, header: X-Mercoa-Token, secrets: [{env: PLAIN}]}
  - {provider: moxie, id: x, mode: basic, user: hooks, secrets: [{env: PLAIN}]}
`
	srcs, err := parseSources(strings.NewReader(yaml), getenv(map[string]string{
		"RILLET": "c2VjcmV0LXJpbGxldC10b2tlbi0xMjM0NTY=", "WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "PLAIN": "plain-token-0123456789",
	}), readFile(nil))
	if err != nil {
		t.Fatal(err)
	}
	swKey, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	want := []struct{ mode, key string }{
		{"auto", "secret-rillet-token-123456"}, {"raw", "c2VjcmV0LXJpbGxldC10b2tlbi0xMjM0NTY="},
		{"standardwebhooks", string(swKey)}, {"header", "plain-token-0123456789"}, {"basic", "plain-token-0123456789"},
	}
	for i, w := range want {
		c := srcs[i].Credentials
		if c.Mode != w.mode || string(c.Secrets[0].Bytes()) != w.key {
			t.Errorf("source %d: mode %q key %q, want %q %q", i, c.Mode, c.Secrets[0].Bytes(), w.mode, w.key)
		}
	}
	if srcs[3].Credentials.Header != "X-Mercoa-Token" || srcs[4].Credentials.User != "hooks" {
		t.Errorf("header/user not kept: %+v %+v", srcs[3].Credentials, srcs[4].Credentials)
	}
}

func TestParseSourcesModeProblems(t *testing.T) {
	yaml := `
sources:
  - {provider: qonto, id: a, mode: bearer, secrets: [{env: S}]}
  - {provider: moxie, id: b, mode: header, secrets: [{env: S}]}
  - {provider: moxie, id: c, mode: basic, secrets: [{env: S}]}
  - {provider: moxie, id: d, header: X-Token, secrets: [{env: S}]}
  - {provider: rillet, id: e, mode: base64, secrets: [{env: NOT_B64}]}
  - {provider: standardwebhooks, id: f, secrets: [{env: NOT_B64}]}
`
	_, err := parseSources(strings.NewReader(yaml), getenv(map[string]string{"S": "x", "NOT_B64": "hunter2!hunter2!hunter2!"}), readFile(nil))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`mode "bearer"`, "mode header needs header", "mode basic needs user", "header is only for mode header", "sources[4] (rillet/e): secrets[0] (env NOT_B64)", "sources[5] (standardwebhooks/f)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Error("an error repeats a secret")
	}
}

// TestYAMLErrorsQuoteNoValue: a sources file whose YAML cannot be decoded
// (here a secret pasted where a list of references was expected) is
// reported by line, without the value.
func TestYAMLErrorsQuoteNoValue(t *testing.T) {
	const secret = "Zq9x-pasted-here-by-mistake-0123456789" // YAML quotes up to 7 characters
	for _, doc := range []string{
		"sources:\n  - {provider: qonto, id: acme, secrets: " + secret + "}\n",
		"sources:\n  - provider: qonto\n    id: acme\n    secret: " + secret + "\n",
		"sources: " + secret + "\n",
		"sources:\n  - {provider: qonto, id: acme, secrets: [" + secret + "]}\n",
		"sources:\n  - {provider: qonto, id: acme, max_body: " + secret + "}\n",
		"sources:\n  - {provider: qonto, id: acme, max_body: \"a`" + secret + "\"}\n", // a backtick does not end the mask
	} {
		_, err := parseSources(strings.NewReader(doc), getenv(nil), readFile(nil))
		if err == nil {
			t.Fatalf("accepted %q", doc)
		}
		if strings.Contains(err.Error(), secret[:4]) {
			t.Fatalf("the error quotes the value: %v", err)
		}
		if !strings.Contains(err.Error(), "line") {
			t.Fatalf("the error does not say where: %v", err)
		}
	}
}

func parseSources(r io.Reader, getenv stage.Env, readFile stage.ReadFile) ([]Source, error) {
	return ParseSources(r, stage.Secrets{Getenv: getenv, ReadFile: readFile})
}
