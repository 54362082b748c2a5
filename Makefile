# Flowc: `make test` and `make demo` each do the whole set-up on a fresh Debian 12 machine
# (as root, or with sudo): install the missing system packages (OpenBLAS, LLVM 19, and a C
# compiler driver to link compiled models when there is none), build, run.
SHELL := /bin/bash
APT_PACKAGES := libopenblas-dev llvm-19-dev
SWIFT ?= swift
# `make build` and `make demo` use an optimised flowc (a debug one takes 2–3x as long to compile a
# model: RealNVP 64-d 0.79 s against 0.28 s); the tests use the debug build they make.
FLOWC := .build/release/flowc

.PHONY: all setup build test demo bench peers ops-doc clean

all: build

# Installs only what is missing; no network access when everything is present.
setup:
	@command -v $(SWIFT) >/dev/null || { echo "error: Swift 6 is needed (https://www.swift.org/install/linux/); '$(SWIFT)' is not on PATH" >&2; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	command -v cc >/dev/null || command -v clang >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: setup
	$(SWIFT) build -c release --product flowc

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	@echo "== examples/embed: a separate package that embeds FlowRuntime and runs a compiled model =="
	.build/debug/flowc compile examples/default/realnvp2.flow -o .build/embed-test.so
	$(SWIFT) build --package-path examples/embed --scratch-path .build-embed
	.build-embed/debug/embed-demo .build/embed-test.so

# The main job on the demo model (a RealNVP trained on two moons, examples/two_moons): compile it
# to a shared object, draw 20000 samples and a picture of them, and evaluate the exact
# log-likelihood of the held-out set with the compiled code, next to PyTorch's figure.
demo: build
	@echo "== flowc compile: examples/two_moons/realnvp.flow -> .build/demo/two_moons.so =="
	@mkdir -p .build/demo
	$(FLOWC) compile examples/two_moons/realnvp.flow -o .build/demo/two_moons.so
	@$(FLOWC) info .build/demo/two_moons.so
	@echo
	@echo "== flowc sample: 20000 samples, seed 7, and their picture =="
	$(FLOWC) sample .build/demo/two_moons.so -n 20000 --seed 7 -o .build/demo/samples.npy --png .build/demo/samples.png
	@echo
	@echo "== flowc logprob: exact log p(x) of the 4000 held-out points (compiled) =="
	$(FLOWC) logprob .build/demo/two_moons.so --input examples/two_moons/heldout.npy -o .build/demo/logp.npy
	@echo
	@echo "== a TarFlow trained on 8x8 digits: compile, 64 samples (temperature 0.8) and their picture =="
	$(FLOWC) compile examples/digits/tarflow.flow -o .build/demo/digits.so
	$(FLOWC) sample .build/demo/digits.so -n 64 --seed 3 --temperature 0.8 -o .build/demo/digits.npy --png .build/demo/digits.png
	@echo
	@echo "demo done:"
	@echo "  examples/two_moons/realnvp.flow (zuko RealNVP, 8 couplings): 20000 samples, picture .build/demo/samples.png;"
	@echo "    held-out mean log-likelihood above, PyTorch's figure in examples/two_moons/README.md"
	@echo "  examples/digits/tarflow.flow (apple/ml-tarflow TarFlow, 4 blocks): 64 samples, picture .build/demo/digits.png"

# Compiled vs interpreted vs PyTorch eager (when python3 has torch and zuko) vs ONNX Runtime
# (when it also has onnxruntime and onnxscript) vs JAX jit (when it has jax; `make peers` installs
# all of them) vs torch.compile (with FLOWC_BENCH_TORCH_COMPILE=1) timings of
# the reference models, best-peer ratios, FMA peak, compile times and entry-point heap
# allocations, in release mode.
bench: setup
	$(SWIFT) build -c release --product flowc-bench
	$(SWIFT) build -c release --product flowc
	.build/release/flowc-bench

# The peers of `make bench` (PyTorch eager and torch.compile, ONNX Runtime, JAX jit) at the
# versions of issue 8's table, into the python3 on PATH (an active virtualenv's: Debian's own
# Python refuses pip installs), ~1 GB, a minute or two. PyTorch's CPU wheel is not on PyPI:
# from pip's own configuration when it has it, else PyTorch's index.
peers:
	python3 -m pip install -r Benchmarks/requirements-peers.txt 2>/dev/null \
	  || python3 -m pip install -r Benchmarks/requirements-peers.txt --extra-index-url https://download.pytorch.org/whl/cpu

# Regenerates the op catalogue from the op definitions (a test checks it is current).
ops-doc: build
	$(FLOWC) ops --markdown > IR/OPS.md

clean:
	rm -rf .build
