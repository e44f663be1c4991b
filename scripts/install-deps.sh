#!/usr/bin/env bash
# Installs what the build, `make run`, the tests and the benchmarks need on a
# fresh Debian machine: system packages with apt-get, Python test tools with
# pip. Idempotent and quiet when everything is there.
set -euo pipefail

APT_PACKAGES=(
  libfcgi-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libhiredis-dev pkg-config  # build: the system libraries
  nginx-light lighttpd spawn-fcgi openssl       # run: web servers, process spawner, TLS cert
  chromium chromium-driver nodejs               # tests: the browser page and the JS SDK
  wrk apache2-utils valgrind                    # benchmarks (wrk, ab) and profiling
  prometheus                                    # tests: a real Prometheus scrapes /metrics; promtool checks it
  redis-server                                  # tests: the fleet's shared Redis (issue #16)
  python3 python3-pip curl procps
)
PY_MODULES=(openai anthropic selenium pytest matplotlib opentelemetry.proto)
PY_PACKAGES=("openai>=1.40,<2" "anthropic>=0.40" "selenium>=4.20" "pytest>=8" "matplotlib>=3.7" "opentelemetry-proto>=1.20")

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A node from elsewhere (e.g. a newer toolchain on PATH) is fine for the SDK tests.
if command -v node >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
fi
# python3/pip from pyenv or similar count too.
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}"); missing=("${missing[@]/python3}")
fi
want=()
for p in "${missing[@]}"; do [ -n "$p" ] && want+=("$p"); done
if [ ${#want[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${want[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

if ! python3 -c "import $(IFS=,; echo "${PY_MODULES[*]}")" >/dev/null 2>&1; then
  echo "install-deps: pip install ${PY_PACKAGES[*]}"
  python3 -m pip install -q "${PY_PACKAGES[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${PY_PACKAGES[@]}"
fi

command -v swift >/dev/null 2>&1 || { echo "install-deps: a Swift 6 toolchain is required (swift not on PATH)" >&2; exit 1; }
