#!/usr/bin/env bash
# Builds the Go programs that tests and benchmarks compare scrapepool with, from their Go
# modules, into a cache keyed by module version, and prints the path of the one asked for.
#
#   scripts/go-tools.sh prometheus|promtool|vmagent     the binary's path (built if missing)
#   scripts/go-tools.sh exporter                        the same for tests/go-exporter
#   scripts/go-tools.sh all                             build every one, print nothing
#
# Cache: ${SCRAPEPOOL_CACHE:-~/.cache/scrapepool}/go/<name>-<version>/<binary>. Only a fresh
# machine pays the build (Prometheus: about 10 minutes, mostly module downloads). The
# exporter is this repository's module, so its key is not a version but the first 16 hex
# digits of a SHA-256 over its go.mod, go.sum and *.go: go-exporter-<hash>/go-exporter.
set -euo pipefail

cache="${SCRAPEPOOL_CACHE:-$HOME/.cache/scrapepool}/go"

# name  module path of the main package  version
tools=(
  "prometheus github.com/prometheus/prometheus/cmd/prometheus v0.316.0"
  "promtool github.com/prometheus/prometheus/cmd/promtool v0.316.0"
  "vmagent github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent v1.151.0"
)

die() { echo "go-tools.sh: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exporter_src="$here/../tests/go-exporter"

build() {
  local name="$1" pkg="$2" version="$3"
  local dir="$cache/$name-$version"
  if [ ! -x "$dir/$name" ]; then
    command -v go >/dev/null || die "go not found: Go 1.26 is needed to build $name"
    mkdir -p "$dir"
    echo "go-tools.sh: building $name $version (go install $pkg@$version)" >&2
    # A temporary GOBIN, so that a half-finished build never looks like a cached binary.
    local tmp
    tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    GOBIN="$tmp" GOFLAGS=-mod=mod go install "$pkg@$version" >&2 || { rm -rf "$tmp"; die "building $name failed"; }
    mv "$tmp/$name" "$dir/$name"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$dir/$name"
}

# tests/go-exporter, built with go build from its directory into go-exporter-<hash>/.
build_exporter() {
  [ -f "$exporter_src/go.mod" ] || die "no Go module at $exporter_src"
  local hash
  hash="$(cd "$exporter_src" && LC_ALL=C sha256sum go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
  local dir="$cache/go-exporter-$hash"
  if [ ! -x "$dir/go-exporter" ]; then
    command -v go >/dev/null || die "go not found: Go 1.26 is needed to build go-exporter"
    mkdir -p "$dir"
    echo "go-tools.sh: building go-exporter $hash (go build in tests/go-exporter)" >&2
    local tmp
    tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    (cd "$exporter_src" && GOFLAGS=-mod=mod go build -buildvcs=false -trimpath -o "$tmp/go-exporter" .) >&2 \
      || { rm -rf "$tmp"; die "building go-exporter failed"; }
    mv "$tmp/go-exporter" "$dir/go-exporter"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$dir/go-exporter"
}

want="${1:-}"
[ -n "$want" ] || die "usage: scripts/go-tools.sh prometheus|promtool|vmagent|exporter|all"
found=0
if [ "$want" = all ]; then
  build_exporter >/dev/null
elif [ "$want" = exporter ]; then
  build_exporter
  found=1
fi
for t in "${tools[@]}"; do
  # shellcheck disable=SC2086
  set -- $t
  if [ "$want" = all ]; then
    build "$@" >/dev/null
    found=1
  elif [ "$want" = "$1" ]; then
    build "$@"
    found=1
  fi
done
[ "$found" = 1 ] || die "unknown tool '$want' (prometheus, promtool, vmagent, exporter, all)"
