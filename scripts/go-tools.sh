#!/usr/bin/env bash
# Builds the Go programs that tests and benchmarks compare scrapepool with, from their Go
# modules, into a cache keyed by module version, and prints the path of the one asked for.
#
#   scripts/go-tools.sh prometheus|promtool|vmagent     the binary's path (built if missing)
#   scripts/go-tools.sh all                             build every one, print nothing
#
# Cache: ${SCRAPEPOOL_CACHE:-~/.cache/scrapepool}/go/<name>-<version>/<binary>. Only a fresh
# machine pays the build (Prometheus: about 10 minutes, mostly module downloads).
set -euo pipefail

cache="${SCRAPEPOOL_CACHE:-$HOME/.cache/scrapepool}/go"

# name  module path of the main package  version
tools=(
  "prometheus github.com/prometheus/prometheus/cmd/prometheus v0.316.0"
  "promtool github.com/prometheus/prometheus/cmd/promtool v0.316.0"
  "vmagent github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent v1.151.0"
)

die() { echo "go-tools.sh: $*" >&2; exit 1; }

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

want="${1:-}"
[ -n "$want" ] || die "usage: scripts/go-tools.sh prometheus|promtool|vmagent|all"
found=0
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
[ "$found" = 1 ] || die "unknown tool '$want' (prometheus, promtool, vmagent, all)"
