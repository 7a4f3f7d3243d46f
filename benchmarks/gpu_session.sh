#!/usr/bin/env bash
# One prepared GPU session (about 6-9 minutes on an H100): everything issue 10 and issue 8 need measured on a GPU.
#
#   1. gpu-base key table: backbone, ST MNRL, SimCSELoss (+ no-check and two-pass variants) at batch 64 and 512
#   2. GradCache at batch 1024, mini-batch 128: CachedSimCSELoss vs ST CachedMNRL (+ plain SimCSELoss for memory)
#   3. torch.profiler summaries of the key configurations (host vs device time, kernels, host-device waits)
#   4. fairseq: seconds per update of mCLR and R-Drop vs label_smoothed_cross_entropy (transformer-base sized)
#   5. every loss's factory at batch 64 and 512, one pass, until the time budget runs out
#   (optional) compiled: the GradCache step with the encoder under torch.compile
#   (optional) cudagraphs: GradCache with the encoder under CUDA graphs (mode="reduce-overhead"): first the
#              exactness check (python -m benchmarks.check_compiled_gradcache --cudagraphs), then the step at 1024
# PARTS picks parts (default "key cached profiles fairseq all"), e.g. PARTS="fairseq compiled".
#
# Usage on the GPU machine, from the repository root (wheels for sentence-transformers 6.2, transformers 5.24 and
# fairseq-fixed with its dependencies in .whl/, the Multi30k data-bin of benchmarks.quality_mclr_multi30k carried
# in $FAIRSEQ_WORK_DIR, default outputs/mclr_multi30k):
#   OUT=/some/dir bash benchmarks/gpu_session.sh
#   PARTS="cached compiled cudagraphs fairseq" OUT=/some/dir bash benchmarks/gpu_session.sh
# Every part runs under `timeout` so that one hung part cannot eat the session; NO_TIMEOUT=1 drops those limits
# (and DEADLINE's budget for the all-loss table), for a dry run on a CPU, whose speed depends on the machine's load:
#   PRESET=cpu-smoke DEVICE=cpu NO_TIMEOUT=1 KEY_BATCHES=4 CACHED_BATCH=4 OUT=/tmp/gs bash benchmarks/gpu_session.sh
# Everything lands in $OUT/gpu_session.tar.gz (refreshed after every part) and the tables in $OUT/summary.md.
set -u
OUT=${OUT:-/tmp/gpu-session}
PRESET=${PRESET:-gpu-base}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/stc-bench}
RES=$OUT/results
mkdir -p "$RES/profiles" "$WORK"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/summary.md"; }
pack() { tar -czf "$OUT/gpu_session.tar.gz" -C "$OUT" results summary.md 2>/dev/null; }
limited() {  # seconds, then the command: run it under `timeout`, or without a limit when NO_TIMEOUT=1
  local seconds=$1; shift
  if [ "${NO_TIMEOUT:-0}" = 1 ]; then "$@"; else timeout "$seconds" "$@"; fi
}
bench() {  # name, timeout, then bench_losses arguments
  local name=$1 limit=$2; shift 2
  log "part $name"
  limited "$limit" $PY -m benchmarks.bench_losses --preset "$PRESET" --in-process --workdir "$WORK" \
    --output "$RES/$name.json" --overwrite "$@" >"$RES/$name.md" 2>"$RES/$name.log"
  log "part $name: exit $?"
  cat "$RES/$name.md" >>"$OUT/summary.md"
  pack
}

# the versions tested here (sentence-transformers, transformers) and fairseq, from wheels carried in .whl/
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >"$RES/wheels_install.log" 2>&1 || log "carried wheels failed to install: running on the machine's own versions"
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch, transformers, sentence_transformers as st; print('torch', torch.__version__, 'transformers', transformers.__version__, 'sentence-transformers', st.__version__)"
} >"$RES/env.txt" 2>&1
cat "$RES/env.txt" >>"$OUT/summary.md"

want() { case " ${PARTS:-key cached profiles fairseq all} " in *" $1 "*) return 0 ;; esac; return 1; }

if want key; then
  bench key 150 --losses backbone,mnrl,simcse,simcse-nocheck,simcse-two-pass --passes 2 ${KEY_BATCHES:+--batch-sizes $KEY_BATCHES}
fi
if want cached; then
  bench cached 110 --losses backbone,simcse,cached-simcse,cached-simcse-nocheck,cached-mnrl --passes 2 \
    --batch-sizes "${CACHED_BATCH:-1024}"
fi
if want profiles; then
  log "part profiles"
  limited "${PROFILE_LIMIT:-80}" $PY -m benchmarks.profile_losses --preset "$PRESET" --workdir "$WORK" \
    --tables-dir "$RES/profiles" --output "$RES/profiles.json" --overwrite --steps "${PROFILE_STEPS:-3}" \
    --configs "${PROFILE_CONFIGS:-backbone:64,simcse:64,mnrl:64,simcse:512,cached-simcse:1024,cached-mnrl:1024}" \
    >"$RES/profiles.log" 2>&1
  log "part profiles: exit $?"
  grep -E "wall|Error|error" "$RES/profiles.log" >>"$OUT/summary.md"
  pack
fi
if want fairseq; then
  log "part fairseq"
  FAIRSEQ_ARGS=${FAIRSEQ_ARGS:---device $DEVICE --bf16 --embed-dim 512 --layers 6 --heads 8 --max-tokens 8192 --steps 20 --warmup 2 --order blocked --warm-all-shapes}
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 limited "${FAIRSEQ_LIMIT:-100}" $PY -m benchmarks.bench_fairseq_speed \
    --work-dir "${FAIRSEQ_WORK_DIR:-outputs/mclr_multi30k}" $FAIRSEQ_ARGS --output "$RES/fairseq_speed_gpu.json" \
    --overwrite >"$RES/fairseq.log" 2>&1
  log "part fairseq: exit $?"
  tail -4 "$RES/fairseq.log" >>"$OUT/summary.md"
  pack
fi
if want compiled; then  # torch.compile'd encoder: is the GradCache step's launch overhead the gap?
  bench compiled "${COMPILED_LIMIT:-200}" --losses backbone,simcse,cached-simcse,cached-mnrl,cached-simcse-compiled \
    --passes 1 --batch-sizes "${CACHED_BATCH:-1024}"
fi
if want cudagraphs; then  # CUDA graphs remove the per-kernel host cost that bounds every GradCache pass
  log "part cudagraphs-check"
  limited "${CHECK_LIMIT:-150}" $PY -m benchmarks.check_compiled_gradcache --device "$DEVICE" --cudagraphs \
    --workdir "$WORK" ${CHECK_ROWS:+--rows $CHECK_ROWS} >"$RES/cudagraphs_check.log" 2>&1
  log "part cudagraphs-check: exit $?"
  tail -2 "$RES/cudagraphs_check.log" >>"$OUT/summary.md"
  bench cudagraphs "${COMPILED_LIMIT:-200}" --losses backbone,cached-simcse,cached-mnrl,cached-simcse-cudagraphs \
    --passes 1 --batch-sizes "${CACHED_BATCH:-1024}"
fi
if want all; then
  # whatever is left of DEADLINE (seconds after the start) goes to the all-loss table
  LEFT=$((${DEADLINE:-530} - ($(date +%s) - T0)))
  if [ "${NO_TIMEOUT:-0}" = 1 ]; then
    bench all 0 --passes 1 --steps "${ALL_STEPS:-5}" ${KEY_BATCHES:+--batch-sizes $KEY_BATCHES} ${ALL_LOSSES:+--losses $ALL_LOSSES}
  elif [ "$LEFT" -gt 60 ]; then
    bench all $((LEFT - 10)) --passes 1 --steps 5 --time-budget $((LEFT - 45)) ${KEY_BATCHES:+--batch-sizes $KEY_BATCHES}
  else
    log "no time left for the all-loss table ($LEFT s)"
  fi
fi
log "done"
