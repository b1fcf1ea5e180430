# invoicehub — the two commands a newcomer needs are `make run` and `make test`.

GO        ?= go
MODULES   := schemas internal ingress normalizer sinks cmd/invoicehub e2e
FUZZTIME  ?= 30s
BENCHTIME ?= 2s
BENCHCPU  ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 1 ] && echo 1,$$n || echo 1)

.PHONY: run demo test test-docker test-faults test-powerloss images check fmt vet fuzz bench bench-e2e build clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

run: ## run the whole pipeline on this machine (embedded JetStream, data in ./data)
	$(GO) run ./cmd/invoicehub dev

demo: ## post a signed sample Qonto webhook to `make run`
	$(GO) run ./cmd/invoicehub send qonto

test: fmt vet ## every test this machine can run, each module alone (GOWORK=off): unit, embedded JetStream, e2e processes, containers when Docker runs
	@set -e; for m in $(MODULES); do echo "== $$m (GOWORK=off)"; (cd $$m && GOWORK=off $(GO) build ./... && GOWORK=off $(GO) test -count=1 ./...); done
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory test-docker; else echo "== containers: skipped, Docker is not reachable"; fi

images: ## FROM scratch images of the binaries and of nats-server (no pulls)
	deploy/build-images.sh

test-docker: images ## the container tier: the project's images with testcontainers
	@echo "== containers"
	cd e2e && GOWORK=off $(GO) test -tags docker -count=1 -run '^TestContainers' ./...

test-faults: ## the fault suite: real processes, kills, restarts, resends; exact counts per scenario (and the cluster scenario when Docker runs)
	@report=$$(mktemp); tags=faults; \
	if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory images && tags="faults docker"; \
	else echo "== fault suite without the cluster scenario: Docker is not reachable"; fi; \
	cd e2e && INVOICEHUB_FAULTS_REPORT=$$report GOWORK=off $(GO) test -tags "$$tags" -count=1 -timeout 20m -run '^TestFaults' ./... && cat $$report

test-powerloss: ## the fault suite's power-loss tier alone: NATS stores on a FUSE disk that forgets unsynced writes at a simulated power cut (needs /dev/fuse and root)
	@report=$$(mktemp); cd e2e && INVOICEHUB_FAULTS_REPORT=$$report GOWORK=off $(GO) test -tags faults -count=1 -timeout 20m -run '^TestFaultsPowerLoss$$' ./... && cat $$report

check: fmt vet ## formatting and vet across the workspace

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(foreach m,$(MODULES),./$(m)/...)

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for m in $(MODULES); do \
	  for pkg in $$(cd $$m && $(GO) list ./...); do \
	    for f in $$(cd $$m && $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	      echo "== $$pkg $$f ($(FUZZTIME))"; (cd $$m && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg); \
	    done; done; done

bench: ## benchmarks, ratios measured in the same run, at GOMAXPROCS 1 and all cores (BENCHCPU)
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -cpu $(BENCHCPU) $(foreach m,$(MODULES),./$(m)/...)

bench-e2e: ## end-to-end benchmark on real processes: rate sweep (webhook → sink latency, CPU and RSS per stage), a bare one-message-per-hop pipeline at the same rates, ingress vs a bare JetStream forwarder, and the durability policy's cost
	cd e2e && GOWORK=off $(GO) test -tags benche2e -count=1 -timeout 25m -run '^TestBenchE2E' -v ./...

build: ## static binaries in ./bin
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/invoicehub

clean:
	rm -rf bin data
