#!/usr/bin/env bash
# Bootstrap .venv for `make test` / `make demo`: idempotent, cheap on a second run.
# Order matters: torch==2.13.0 first (a bare `torch` would pull a multi-GB CUDA build), then the
# package with its extras, then fairseq from a cached wheel, then WordNet from Debian when root.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
CACHE=${ST_CONTRAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/st-contrast}
STAMP="$VENV/.st-contrast-bootstrap"
TORCH_VERSION=2.13.0
FAIRSEQ_VERSION=0.12.3.1
# Re-run only when the dependency declarations change.
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import st_contrast, fairseq" 2>/dev/null; then
  exit 0
fi
echo "[bootstrap] setting up $VENV (first run takes a few minutes)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install -U pip wheel setuptools >/dev/null
# 1. torch, pinned, CPU build from local disk or the default index.
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null \
  || $PIP install "torch==$TORCH_VERSION"
# 2. the package itself, editable, with extras; torch pinned so nothing resolves a different one.
echo "torch==$TORCH_VERSION" > "$VENV/torch-pin.txt"
$PIP install -c "$VENV/torch-pin.txt" -e ".[train,dev,demo]"
# 3. fairseq: PyPI fairseq 0.12.2 does not build on Python 3.11; fairseq-fixed does. Its build takes
#    minutes, so the wheel is cached per machine. Never torchaudio (it pins another torch).
if ! "$VENV/bin/python" -c "import fairseq" 2>/dev/null; then
  $PIP install -c "$VENV/torch-pin.txt" "hydra-core==1.3.2" "omegaconf==2.3.0" bitarray sacrebleu cython cffi scikit-learn
  mkdir -p "$CACHE/wheels"
  wheel=$(ls "$CACHE"/wheels/fairseq_fixed-"$FAIRSEQ_VERSION"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    echo "[bootstrap] building fairseq-fixed==$FAIRSEQ_VERSION once (about 2.5 minutes)"
    $PIP wheel --no-deps --no-build-isolation -w "$CACHE/wheels" "fairseq-fixed==$FAIRSEQ_VERSION"
    wheel=$(ls "$CACHE"/wheels/fairseq_fixed-"$FAIRSEQ_VERSION"-*.whl | head -n1)
  fi
  $PIP install --no-deps "$wheel"
fi
# 4. WordNet 3.0 from Debian (no NLTK download here); the library copies it into an NLTK data folder.
if [ ! -f /usr/share/wordnet/data.noun ] && [ ! -f /usr/share/wordnet/dict/data.noun ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[bootstrap] installing WordNet (Debian wordnet-base, wordnet-sense-index)"
    (apt-get install -y -q wordnet-base wordnet-sense-index >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wordnet-base wordnet-sense-index >/dev/null; }) \
      || echo "[bootstrap] WARNING: could not install WordNet; CLINE features will raise a clear error"
  else
    echo "[bootstrap] WordNet not found; install Debian packages wordnet-base wordnet-sense-index or nltk.download('wordnet')"
  fi
fi
echo "$want" > "$STAMP"
echo "[bootstrap] done"
