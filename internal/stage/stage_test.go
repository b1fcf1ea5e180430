package stage

import (
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/internal/jstest"
)

func env(vars map[string]string) Env { return func(k string) string { return vars[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil), nil)
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
	}), nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"LOG_LEVEL", "LOG_FORMAT", "STREAM_REPLICAS", "DUPLICATE_WINDOW", "SHUTDOWN_GRACE", "PASSWORD_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestSecretsResolveOneRule(t *testing.T) {
	files := map[string]string{"/s/plain": "s3cret", "/s/newline": "s3cret\n", "/s/crlf": "s3cret\r\n", "/s/spaces": " s3cret \n", "/s/empty": "\n"}
	s := Secrets{
		Getenv: env(map[string]string{"PLAIN": "s3cret", "NEWLINE": "s3cret\n", "EMPTY": ""}),
		ReadFile: func(name string) ([]byte, error) {
			if v, ok := files[name]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		},
	}
	for _, tc := range []struct {
		ref     SecretRef
		want    string
		wantErr string
	}{
		{SecretRef{Env: "PLAIN"}, "s3cret", ""},
		{SecretRef{Env: "NEWLINE"}, "s3cret", ""},
		{SecretRef{File: "/s/plain"}, "s3cret", ""},
		{SecretRef{File: "/s/newline"}, "s3cret", ""},
		{SecretRef{File: "/s/crlf"}, "s3cret", ""},
		{SecretRef{File: "/s/spaces"}, " s3cret ", ""},
		{SecretRef{Env: "EMPTY"}, "", "env EMPTY is empty or unset"},
		{SecretRef{Env: "UNSET"}, "", "env UNSET is empty or unset"},
		{SecretRef{File: "/s/empty"}, "", "file /s/empty is empty"},
		{SecretRef{File: "/s/missing"}, "", "secret file /s/missing"},
		{SecretRef{Env: "PLAIN", File: "/s/plain"}, "", "not both"},
		{SecretRef{}, "", "needs env or file"},
	} {
		got, err := s.Resolve(tc.ref)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: err %v, want %q", tc.ref, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || string(got) != tc.want):
			t.Errorf("%+v: %q, %v; want %q", tc.ref, got, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%+v: the error holds the value: %v", tc.ref, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.slack.com/services/T0000/B0000/XXXXsecret", "https://hooks.slack.com/REDACTED/REDACTED/REDACTED/REDACTED"},
		{"https://user:pw@erp.example:8443/in?token=abc&x=1#frag", "https://user:xxxxx@erp.example:8443/REDACTED?token=REDACTED&x=REDACTED"},
		{"https://erp.example/", "https://erp.example/"},
		{"https://erp.example", "https://erp.example"},
		{"https://erp.example/a%2Fsecret/b", "https://erp.example/REDACTED/REDACTED"},
		{"nats://admin:s3cret@n1:4222", "nats://admin:xxxxx@n1:4222"},
		{"mailto:someone@secret.example", "mailto:"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactURL(u); got != tt.want {
			t.Errorf("RedactURL(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	got := RedactURLs("nats://admin:s3cret@n1:4222, nats://n2:4222,nats://ingress:pw@n3")
	if strings.Contains(got, "s3cret") || strings.Contains(got, ":pw@") || !strings.Contains(got, "nats://admin:xxxxx@n1:4222") || !strings.Contains(got, "nats://n2:4222") {
		t.Fatalf("RedactURLs = %q", got)
	}
}

// TestDrainWaitsForTheConnectionToClose: what a subscription still holds
// is handled before Drain returns, and the connection is closed; on a
// closed connection Drain returns at once.
func TestDrainWaitsForTheConnectionToClose(t *testing.T) {
	nc, _ := jstest.Run(t).Connect(t)
	handled := make(chan struct{}, 1)
	if _, err := nc.Subscribe("drain.test", func(*nats.Msg) { handled <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("drain.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	Drain(nc, 5*time.Second)
	if !nc.IsClosed() || len(handled) != 1 {
		t.Fatalf("after Drain: closed %v, messages handled %d", nc.IsClosed(), len(handled))
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("Drain took %v: it waited out its timeout", took)
	}
	start = time.Now()
	Drain(nc, 5*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Drain of a closed connection took %v", took)
	}
}
