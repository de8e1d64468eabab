#!/usr/bin/env bash
# Installs the Debian packages that scrapepool's builds and tests need, then builds the
# reference Prometheus 3.16 and promtool 3.16 through scripts/go-tools.sh (cached by version
# under ~/.cache/scrapepool/go/; needs Go, which no Debian package here provides).
#
# Idempotent and quick on a second run: apt is skipped when every package is already
# installed. Works unattended (CI: root, no stdin). Services that the packages would start
# on their default ports (node-exporter, zookeeper, dnsmasq, ...) are kept from
# starting, so that the tests own their ports: scripts/services.sh and the tests start
# their own instances on free loopback ports.
set -euo pipefail

packages=(
  # Test services: the tests start their own instances from these binaries.
  # Prometheus itself is not one: the reference is 3.16, built from its Go module below.
  zookeeper dnsmasq prometheus-node-exporter victoria-metrics
  # Browser for the web UI's screenshot tests.
  chromium
  # Apache Kafka runs from jars fetched by Maven (scripts/kafka/pom.xml).
  default-jre-headless maven
  # rdkafka builds librdkafka from source (its configure script + make, C and C++) with
  # features ssl (OpenSSL via pkg-config), zstd and libz. cmake is for rdkafka's
  # `cmake-build` (broken in librdkafka 2.12, see Cargo.toml), libsasl2-dev for its
  # `gssapi` (Kerberos) feature: neither is enabled, both are kept so either can be.
  cmake g++ make pkg-config libssl-dev zlib1g-dev libzstd-dev libsasl2-dev
  # Free-port picking and small helpers in scripts/.
  python3 curl procps iproute2
)

missing=()
for p in "${packages[@]}"; do
  # "install ok installed" only for a fully installed package (what `dpkg -s` shows).
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The reference Prometheus and promtool (3.16): a no-op once cached.
go_tools() {
  "$here/go-tools.sh" prometheus >/dev/null
  "$here/go-tools.sh" promtool >/dev/null
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  go_tools
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# policy-rc.d exiting 101 tells invoke-rc.d (called by the packages' postinst scripts) not
# to start any service. Only ours is removed afterwards; an existing one is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get -o DPkg::Lock::Timeout=600 update -q
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"

# Where systemd runs, policy-rc.d may not have been consulted (deb-systemd-invoke):
# stop and disable the packaged services so that their default ports stay free.
if [ -d /run/systemd/system ]; then
  for unit in prometheus-node-exporter zookeeper dnsmasq victoria-metrics; do
    $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
go_tools
echo "install-deps: done"
