#!/usr/bin/env bash
# CI's Docker step (`make docker-check`, called by .ci/run after `make test`):
#
#   1. a Docker engine and the base images (scripts/docker-base.sh; on a machine with
#      no registry access they are made locally);
#   2. build Dockerfile.cpu from this checkout, and Dockerfile.cuda through its
#      `builder` stage (no GPU here; that stage compiles and links against CUDA libtorch);
#   3. run a small MNIST pipeline in the CPU image with the network off, the data
#      mounted read-only and the results in a host directory, as a non-root user;
#   4. check the report and tables it wrote (on libtorch, ONNX Runtime and tract), that
#      every file belongs to that user, that the CPU image refuses `--device cuda` with a
#      clear message, and print the sizes.
#
# Environment:
#   DATA_DIR             host directory holding mnist/ (default ../shared/data)
#   DOCKER_TORCH_INDEX   pip index for the torch wheel inside the builds. Default: PyPI,
#                        the only index these CI machines reach (the images' own default,
#                        download.pytorch.org's CPU index, is smaller; see README)
#   DOCKER_CARGO_PROFILE cargo profile of the image builds (default release)
#   SKIP_CUDA_BUILD=1    skip the CUDA builder stage
#   DOCKER_CACHE_KEEP    build cache kept between runs (default 20GB; the pip wheels,
#                        the cargo target dir and the torch layers fit in it, so a rerun
#                        after a source change only recompiles our crates)
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=1
PID_FILE=/tmp/slimbench-dockerd.pid
DATA_DIR="${DATA_DIR:-../shared/data}"
TORCH_INDEX="${DOCKER_TORCH_INDEX:-https://pypi.org/simple}"
PROFILE="${DOCKER_CARGO_PROFILE:-release}"
REV="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
log() { echo "docker-check: $*" >&2; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

# Stop the engine afterwards only if this script started it.
started_engine=0
[ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1 || started_engine=1
work="$(mktemp -d)"
cleanup() {
  rm -rf "$work" 2>/dev/null || true
  if [ "$started_engine" = 1 ] && [ -s "$PID_FILE" ]; then
    log "stopping dockerd $(cat "$PID_FILE")"
    kill "$(cat "$PID_FILE")" 2>/dev/null || true
    rm -f "$PID_FILE"
  fi
}
trap cleanup EXIT
DOCKERD_PID_FILE="$PID_FILE" scripts/docker-base.sh
# Every source change leaves a new multi-GB builder layer behind: keep the build cache
# bounded (least recently used first) before and after building.
trim_cache() { "$DOCKER" builder prune -f --keep-storage "${DOCKER_CACHE_KEEP:-20GB}" >/dev/null; }
trim_cache

build() {
  local file="$1" tag="$2"; shift 2
  log "building $tag from $file ($*)"
  "$DOCKER" build --progress=plain -f "$file" -t "$tag" \
    --build-arg TORCH_INDEX="$TORCH_INDEX" --build-arg CARGO_PROFILE="$PROFILE" \
    --build-arg GIT_REVISION="$REV" "$@" . >"$work/build-$tag.log" 2>&1 \
    || { tail -60 "$work/build-${tag}.log" >&2; log "error: building $tag failed"; exit 1; }
}
# Builder stages get their own tags so their sizes can be quoted (all layers cached).
build Dockerfile.cpu slimbench:cpu
build Dockerfile.cpu slimbench:cpu-builder --target builder
log "CPU image built ($(elapsed))"
if [ "${SKIP_CUDA_BUILD:-0}" != 1 ]; then
  build Dockerfile.cuda slimbench:cuda-builder --target builder
  log "CUDA builder stage built ($(elapsed))"
fi

# A non-root owner for the results: the caller, or a stand-in uid when CI runs as root.
uid="$(id -u)"; gid="$(id -g)"
if [ "$uid" = 0 ]; then uid=4321; gid=4321; fi
results="$work/results"
mkdir -p "$results"
chown "$uid:$gid" "$results"

run_args=(--rm --network none --user "$uid:$gid" -v "$(cd "$results" && pwd):/results")
if [ -d "$DATA_DIR/mnist" ]; then
  run_args+=(-v "$(cd "$DATA_DIR" && pwd):/data:ro")
  pipeline=(run pipelines/mnist-seed.yaml
    --set datasets.mnist.train_limit=3000 --set datasets.mnist.test_limit=1000
    --set 'stages.prune.matrix.sparsity=[0.5, 0.9]'
    --set stages.eval.with.latency.iters=300
    --set 'stages.eval.with.backends=[libtorch, onnxruntime, tract]')
  name=mnist-seed
else
  log "no $DATA_DIR/mnist: running the quickstart instead"
  pipeline=(run pipelines/quickstart.yaml --set datasets.digits.train_size=3000
    --set 'stages.eval.with.backends=[libtorch, onnxruntime, tract]')
  name=quickstart
fi
log "docker run ${run_args[*]} slimbench:cpu ${pipeline[*]}"
"$DOCKER" run "${run_args[@]}" slimbench:cpu "${pipeline[@]}"

fail() { log "error: $*"; exit 1; }
run_dir="$(find "$results/$name" -mindepth 1 -maxdepth 1 -type d -name '2*' | head -1)"
[ -n "$run_dir" ] || fail "no run directory under $results/$name"
for f in report.html summary.md metrics.parquet metrics.csv latency.parquet run.json charts/accuracy_vs_size.png; do
  [ -s "$run_dir/$f" ] || fail "$f missing from $run_dir"
done
grep -q '"device": "cpu"' "$run_dir/run.json" || fail "run.json does not say device cpu"
# Every variant evaluated: the header plus train, fp16 and one row per sparsity.
rows=$(($(wc -l <"$run_dir/metrics.csv") - 1))
[ "$rows" -ge 3 ] || fail "metrics.csv has $rows rows"
# The image's ONNX Runtime library loaded with the network off, and tract ran too.
for b in onnxruntime tract; do
  grep -q ",$b," "$run_dir/metrics.csv" || fail "no $b rows in metrics.csv (is the image's ONNX Runtime library there?)"
done
foreign=$(find "$results" ! -uid "$uid" | head -5)
[ -z "$foreign" ] || fail "files not owned by uid $uid: $foreign"
log "run in the image wrote $(find "$results" -type f | wc -l) files, all owned by uid $uid, $rows variants"

# compare inside the image, the run against itself: no regression, exit 0.
"$DOCKER" run "${run_args[@]}" slimbench:cpu compare "/results/$name/latest" "/results/$name/latest" \
  --out /tmp/compare >/dev/null || fail "compare of a run with itself did not exit 0"

# The CPU image has no CUDA: asking for it must fail clearly, with exit 2.
set +e
msg="$("$DOCKER" run "${run_args[@]}" slimbench:cpu run pipelines/quickstart.yaml --device cuda 2>&1)"
code=$?
set -e
[ "$code" = 2 ] || fail "--device cuda in the CPU image exited $code, not 2: $msg"
grep -q "no CUDA support" <<<"$msg" || fail "unclear message for --device cuda: $msg"

log "image sizes:"
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | sed -n 's/^slimbench:/  slimbench:/p' >&2
# The builder tags were only for their sizes; images these builds replaced would pile
# up over CI runs.
"$DOCKER" rmi slimbench:cpu-builder slimbench:cuda-builder >/dev/null 2>&1 || true
"$DOCKER" image prune -f >/dev/null
trim_cache
log "passed in $(elapsed)"
