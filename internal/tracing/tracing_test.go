package tracing

import (
	"net/http"
	"strings"
	"testing"
)

func TestTraceCrossesStages(t *testing.T) {
	shutdown, err := Setup(t.Context(), "test", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	ctx, span := Start(t.Context(), "ingress", "")
	first := Traceparent(ctx)
	span.End()
	if len(first) != 55 || !strings.HasPrefix(first, "00-") {
		t.Fatalf("traceparent %q", first)
	}
	ctx2, span2 := Start(t.Context(), "normalizer", first)
	second := Traceparent(ctx2)
	span2.End()
	if second[3:35] != first[3:35] || second[36:52] == first[36:52] {
		t.Fatalf("child %q of %q: same trace, new span expected", second, first)
	}
	h := http.Header{}
	Inject(ctx2, h)
	if h.Get("traceparent") != second {
		t.Fatalf("header %q", h.Get("traceparent"))
	}
}

func TestTraceparentWithoutTrace(t *testing.T) {
	if tp := Traceparent(t.Context()); tp != "" {
		t.Fatalf("got %q", tp)
	}
}
