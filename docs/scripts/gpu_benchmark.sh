#!/usr/bin/env bash
# Everything sfnet wants to know about a GPU, in one run of a few minutes.
#
#   docs/scripts/gpu_benchmark.sh [--device cuda|cpu] [--out DIR] [--quick]
#
# From a repository checkout with sfnet's environment active (the `sfnet`
# package importable by `python`).  Four steps, each under its own timeout; a
# step that fails or times out is recorded and the others still run:
#
#   1. `sfnet benchmark` with bf16 and batch 256 at 144 px (the paper's crop):
#      bare loop vs fit, inference, FLOPs, JPEG decode, streamed vs in-memory
#      training, streamed peak memory, the projection of the paper's runs;
#   2. the same with --compile (torch.compile's speed-up and compile time);
#   3. a short fit streamed from a memory-mapped file (max_in_memory_gb = 0);
#   4. a one-node torchrun DDP fit on all visible GPUs (nccl), also streamed.
#
# Everything lands in DIR (default gpu-benchmark-<date>); DIR/gpu_benchmark.json
# gathers all of it.  Expected time on one H200: about 3 minutes (the timeouts
# add up to under 5; SFNET_BENCH_TIMEOUT_SCALE multiplies them).  --device cpu
# --quick is a dry run with tiny sizes that checks every command parses and runs
# (CPU, gloo, 2 processes; timeouts 10 times longer).
set -euo pipefail

DEVICE=cuda
OUT="gpu-benchmark-$(date -u +%Y%m%dT%H%M%SZ)"
QUICK=0
PY=${PYTHON:-python}
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "--device must be cuda or cpu" >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

# ---------------------------------------------------------------- environment
"$PY" - "$DEVICE" > "$OUT/environment.json" <<'PYEOF'
import json, os, platform, subprocess, sys
import torch, sfnet
device = sys.argv[1]
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("CUDA requested but torch.cuda.is_available() is False")
info = {"sfnet": sfnet.__version__, "torch": torch.__version__,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
try:
    info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                        text=True, check=True).stdout.strip()
except (OSError, subprocess.CalledProcessError):
    info["git_commit"] = None
print(json.dumps(info, indent=2))
PYEOF
say "environment: $(tr -d '\n' < "$OUT/environment.json" | tr -s ' ')"

if [ "$DEVICE" = cuda ]; then
    NPROC=$("$PY" -c "import torch; print(torch.cuda.device_count())")
    PRECISION=bf16
    if [ "$QUICK" = 1 ]; then
        BENCH=(--image-size 64 --batch-size 64 --steps 3 --io-images 64 --rss-images 500)
        FIT=(--image-size 64 --n-images 1024 --batch-size 64 --epochs 2)
    else
        BENCH=(--image-size 144 --batch-size 256 --steps 10 --io-images 1024
               --rss-images 2000,8000)
        FIT=(--image-size 144 --n-images 8192 --batch-size 256 --epochs 3)
    fi
else
    NPROC=2
    PRECISION=${SFNET_CPU_PRECISION:-fp32}
    if [ "$QUICK" = 1 ]; then
        BENCH=(--image-size 32 --batch-size 8 --steps 2 --io-images 16 --rss-images 300)
        FIT=(--image-size 32 --n-images 96 --batch-size 16 --epochs 2 --threads 1)
    else
        BENCH=(--image-size 144 --batch-size 64 --steps 6 --io-images 512
               --rss-images 2000,8000)
        FIT=(--image-size 64 --n-images 1024 --batch-size 64 --epochs 3 --threads 1)
    fi
fi

# the timeouts are sized for a GPU; a CPU dry run gets SFNET_BENCH_TIMEOUT_SCALE times more
if [ "$DEVICE" = cuda ]; then TSCALE=${SFNET_BENCH_TIMEOUT_SCALE:-1}
else TSCALE=${SFNET_BENCH_TIMEOUT_SCALE:-10}; fi

FAILED=()
step() {  # step NAME TIMEOUT_S command...
    local name=$1 limit=$(($2 * TSCALE)); shift 2
    say "step $name (timeout ${limit}s): $*"
    local t0=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.out" 2>&1 || rc=$?
    tail -n 40 "$OUT/$name.out" | tee -a "$LOG"
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && say "step $name TIMED OUT" || say "step $name FAILED (exit $rc)"
        FAILED+=("$name")
    fi
    say "step $name took $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- the steps
step streamed_fit 35 "$PY" docs/scripts/ddp_scaling.py --device "$DEVICE" \
    --precision "$PRECISION" --streamed "${FIT[@]}" --json "$OUT/streamed_fit.json"
step ddp_fit 55 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" \
    docs/scripts/ddp_scaling.py --device "$DEVICE" --precision "$PRECISION" --streamed \
    "${FIT[@]}" --json "$OUT/ddp_fit.json"
step benchmark 90 "$PY" -m sfnet benchmark --device "$DEVICE" --precision "$PRECISION" \
    "${BENCH[@]}" --json "$OUT/benchmark.json"
step benchmark_compile 110 "$PY" -m sfnet benchmark --device "$DEVICE" \
    --precision "$PRECISION" "${BENCH[@]}" --no-streaming --rss-images 0 \
    --no-paper-baseline --compile --json "$OUT/benchmark_compile.json"

# ---------------------------------------------------------------- one JSON
"$PY" - "$OUT" "${FAILED[@]+"${FAILED[@]}"}" <<'PYEOF'
import json, os, sys
out, failed = sys.argv[1], sys.argv[2:]
merged = {"failed_steps": failed}
for name in ("environment", "streamed_fit", "ddp_fit", "benchmark", "benchmark_compile"):
    path = os.path.join(out, name + ".json")
    merged[name] = json.load(open(path)) if os.path.exists(path) else None
with open(os.path.join(out, "gpu_benchmark.json"), "w") as fh:
    json.dump(merged, fh, indent=2)
print(f"wrote {os.path.join(out, 'gpu_benchmark.json')}")
PYEOF
if [ "${#FAILED[@]}" -gt 0 ]; then
    say "failed steps: ${FAILED[*]} (see $OUT/*.out)"
    exit 1
fi
say "all steps passed; results in $OUT/gpu_benchmark.json"
