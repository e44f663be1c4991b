# kimi-gateway — the two commands of the README, and their parts.
#   make run    install what is missing, build, start the whole stack, print the URLs
#               (HTTPS_PORT=8443 HTTP_PORT=8080 choose its ports)
#   make test   the same set-up, then every test (unit and end to end)
#   make bench  the benchmark report (bench/results/latest.md)
SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
BIN := .build/release/kimi-gateway
# The Python tooling package (tools/kimistack); pytest.ini sets the same path.
export PYTHONPATH := $(CURDIR)/tools$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: all deps build run test unit e2e fuzz fuzz-corpus bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release --product kimi-gateway

run: build
	@KIMI_GATEWAY_BIN=$(BIN) $(PYTHON) -m kimistack.run

unit: deps
	$(SWIFT) test

e2e: build
	KIMI_GATEWAY_BIN=$(BIN) $(PYTHON) -m pytest Tests/e2e -q -p no:cacheprovider

# libFuzzer over KimiCore's parsers: `make fuzz` explores (FUZZ_SECONDS per
# target, default 60); `make test` replays the committed seed corpus.
fuzz: deps
	scripts/fuzz.sh run $(or $(FUZZ_SECONDS),60)

fuzz-corpus: deps
	scripts/fuzz.sh corpus

test: build unit fuzz-corpus e2e

bench: build
	$(SWIFT) build -c release --product kimi-bench
	KIMI_GATEWAY_BIN=$(BIN) $(PYTHON) bench/run.py

clean:
	rm -rf .build .build-fuzz run test-artifacts
