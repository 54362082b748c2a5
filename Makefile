# Flowc: `make test` and `make demo` each do the whole set-up on a fresh Debian 12 machine
# (as root, or with sudo): install the missing system packages, build, run.
SHELL := /bin/bash
APT_PACKAGES := libopenblas-dev llvm-19-dev
SWIFT ?= swift
FLOWC := .build/debug/flowc

.PHONY: all setup build test demo bench ops-doc clean

all: build

# Installs only what is missing; no network access when everything is present.
setup:
	@command -v $(SWIFT) >/dev/null || { echo "error: Swift 6 is needed (https://www.swift.org/install/linux/); '$(SWIFT)' is not on PATH" >&2; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: setup
	$(SWIFT) build

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The main job on the default example: the flow x -> z and the log-density of a batch, interpreted.
demo: build
	@echo "== flowc check examples/default/realnvp2.flow (parse, verify, print the graph) =="
	@$(FLOWC) check examples/default/realnvp2.flow | tail -n 4
	@echo
	@echo "== flowc run: forward map x -> z of examples/default/batch.npy =="
	$(FLOWC) run examples/default/realnvp2.flow --input examples/default/batch.npy --output .build/demo-z.npy
	@echo
	@echo "== flowc run --entry log_prob: log p(x) of the same batch =="
	$(FLOWC) run examples/default/realnvp2.flow --entry log_prob --input examples/default/batch.npy --output .build/demo-logp.npy --print

# Compiled vs interpreted timings of the reference models, in release mode.
bench: setup
	$(SWIFT) build -c release --product flowc-bench
	.build/release/flowc-bench

# Regenerates the op catalogue from the op definitions (a test checks it is current).
ops-doc: build
	$(FLOWC) ops --markdown > IR/OPS.md

clean:
	rm -rf .build
