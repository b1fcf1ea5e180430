package standardwebhooks

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification.
func TestSpecExample(t *testing.T) {
	key, err := DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	Sign(h, key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if got := h.Get(HeaderSignature); got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("signature %q", got)
	}
	if h.Get(HeaderID) != "msg_p5jXN8AQM9LWM0D4loKWxJek" || h.Get(HeaderTimestamp) != "1614265330" {
		t.Fatalf("headers %v", h)
	}
}

func TestUnsignedWithoutKey(t *testing.T) {
	h := http.Header{}
	Sign(h, nil, "id", time.Unix(1, 0), nil)
	if h.Get(HeaderSignature) != "" || h.Get(HeaderID) != "id" {
		t.Fatalf("headers %v", h)
	}
}

func TestDecodeSecret(t *testing.T) {
	for secret, want := range map[string]string{"whsec_c2VjcmV0": "secret", "c2VjcmV0": "secret", " whsec_c2VjcmV0\n": "secret"} {
		if key, err := DecodeSecret(secret); err != nil || string(key) != want {
			t.Errorf("DecodeSecret(%q) = %q, %v", secret, key, err)
		}
	}
	for _, bad := range []string{"", "whsec_", "whsec_not base64!"} {
		if _, err := DecodeSecret(bad); !errors.Is(err, ErrSecret) {
			t.Errorf("DecodeSecret(%q) = %v", bad, err)
		}
	}
}
