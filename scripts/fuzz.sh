#!/usr/bin/env bash
# libFuzzer over KimiCore's parsers (Tests/Fuzz/KimiFuzz.swift).
#   scripts/fuzz.sh build          build .build-fuzz/kimi-fuzz (-sanitize=fuzzer,address)
#   scripts/fuzz.sh corpus         run every target over its committed seed corpus once
#                                  (what `make test` does: a crash found once stays fixed)
#   scripts/fuzz.sh run [SECONDS]  fuzz each target for SECONDS (default 60), new inputs
#                                  kept in .build-fuzz/corpus/<target>, crashes in .build-fuzz/crashes/
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(json content-length sse config dotenv url header multipart path chunk)
OUT=.build-fuzz
BIN=$OUT/kimi-fuzz
SEEDS=Tests/Fuzz/corpus

build() {
  mkdir -p "$OUT"
  local sources
  sources=$(find Sources/KimiCore -name '*.swift' | sort)
  # Rebuild only when a source changed.
  if [ -x "$BIN" ] && [ -z "$(find Sources/KimiCore Tests/Fuzz/KimiFuzz.swift -newer "$BIN" -name '*.swift' | head -1)" ]; then
    return
  fi
  echo "fuzz: building $BIN"
  # (ld.gold warns about every ASan helper symbol: the log keeps them out of sight.)
  # KimiCore's one C module (libcrypto's SHA-256) through its module map.
  swiftc -sanitize=fuzzer,address -parse-as-library -module-name KimiFuzz -swift-version 5 -Onone \
    -I Sources/CCrypto -lcrypto $sources Tests/Fuzz/KimiFuzz.swift -o "$BIN" >"$OUT/build.log" 2>&1 \
    || { grep -v "Cannot export local symbol" "$OUT/build.log" | tail -40; exit 1; }
}

case "${1:-corpus}" in
  build) build ;;
  corpus)
    build
    for t in "${TARGETS[@]}"; do
      n=$(find "$SEEDS/$t" -type f | wc -l)
      KIMI_FUZZ_TARGET=$t "$BIN" -runs=0 "$SEEDS/$t" >"$OUT/$t.log" 2>&1 \
        || { echo "fuzz: target $t FAILED on its seed corpus:"; tail -40 "$OUT/$t.log"; exit 1; }
      echo "fuzz: $t: $n seed inputs, no crash"
    done
    ;;
  run)
    build
    secs=${2:-${FUZZ_SECONDS:-60}}
    mkdir -p "$OUT/crashes"
    for t in "${TARGETS[@]}"; do
      mkdir -p "$OUT/corpus/$t"
      echo "fuzz: $t for ${secs}s"
      KIMI_FUZZ_TARGET=$t "$BIN" -max_total_time="$secs" -max_len=65536 -artifact_prefix="$OUT/crashes/$t-" \
        -print_final_stats=1 "$OUT/corpus/$t" "$SEEDS/$t" >"$OUT/$t.log" 2>&1 || { echo "fuzz: $t found a crash:"; tail -40 "$OUT/$t.log"; exit 1; }
      grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$OUT/$t.log" | sed "s/^/  $t /"
    done
    ;;
  *) echo "usage: $0 build|corpus|run [SECONDS]" >&2; exit 2 ;;
esac
