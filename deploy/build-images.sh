#!/usr/bin/env bash
# Builds the FROM scratch images of invoicehub's binaries and of
# nats-server (built from its Go module: no image is pulled).
#   deploy/build-images.sh [tag]      (default tag: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-dev}"
out=bin/images
mkdir -p "$out"
export CGO_ENABLED=0
go build -trimpath -ldflags="-s -w" -o "$out/ingress" ./ingress/cmd/ingress
go build -trimpath -ldflags="-s -w" -o "$out/normalizer" ./normalizer/cmd/normalizer
go build -trimpath -ldflags="-s -w" -o "$out/sinks" ./sinks/cmd/sinks
go build -trimpath -ldflags="-s -w" -o "$out/invoicehub" ./cmd/invoicehub
(cd e2e && go build -trimpath -ldflags="-s -w" -o "../$out/nats-server" github.com/nats-io/nats-server/v2)
cp /etc/ssl/certs/ca-certificates.crt "$out/"
mkdir -p "$out/data"
for b in ingress normalizer sinks invoicehub nats-server; do
  docker build -q -f deploy/Dockerfile --build-arg BINARY="$b" -t "invoicehub/$b:$tag" "$out" >/dev/null 2>"$out/build.log" || { cat "$out/build.log"; exit 1; }
  echo "invoicehub/$b:$tag"
done
