# slimbench: the README's two commands are `make run` and `make test`.
# Every target first makes sure libtorch is there (scripts/setup-torch.sh: a venv with
# the pinned torch wheel, created once). One cargo profile (`dev`, tuned in Cargo.toml)
# serves runs, tests and benchmarks, so nothing is compiled twice.
SHELL := bash
CARGO ?= cargo
SLIMBENCH := $(CARGO) run --quiet -p slimbench --
DATA_DIR ?= ../shared/data

.PHONY: all setup build run seed distill bench bench-int8 test lint fmt clean-results docker-cpu docker-cuda docker-check

all: build

setup:
	@scripts/setup-torch.sh

build: setup
	$(CARGO) build -p slimbench

## The quickstart: every stage kind on generated digits (no download).
run: setup
	$(SLIMBENCH) run pipelines/quickstart.yaml

## The seed experiment on MNIST (DATA_DIR holds mnist/; otherwise it is downloaded).
seed: setup
	$(SLIMBENCH) run pipelines/mnist-seed.yaml --data-dir $(DATA_DIR)

## Distillation on Fashion-MNIST.
distill: setup
	$(SLIMBENCH) run pipelines/fashion-distill.yaml --data-dir $(DATA_DIR)

## Speed of the seed CNN: slimbench next to PyTorch (Python), medians and ratios.
bench: setup
	scripts/bench.sh $(DATA_DIR)

## int8 dynamic quantization of an MLP: slimbench next to PyTorch's quantize_dynamic.
bench-int8: setup
	scripts/bench_int8.sh $(DATA_DIR)

## Formatting, lints and every test.
test: setup lint
	$(CARGO) test --workspace

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Docker images (see README "Docker"); BuildKit for the cargo cache mounts.
DOCKER ?= docker
docker-cpu:
	DOCKER_BUILDKIT=1 $(DOCKER) build -f Dockerfile.cpu -t slimbench:cpu --build-arg GIT_REVISION=$$(git rev-parse --short=12 HEAD) .

docker-cuda:
	DOCKER_BUILDKIT=1 $(DOCKER) build -f Dockerfile.cuda -t slimbench:cuda --build-arg GIT_REVISION=$$(git rev-parse --short=12 HEAD) .

## CI's Docker step: build both images (CUDA through its builder stage), run a pipeline
## in the CPU image with the network off, check what it wrote.
docker-check:
	scripts/docker-check.sh

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
