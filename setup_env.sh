#!/usr/bin/env bash
# Set up the course environment in .venv: create it, install the pinned requirements and course_lib
# (editable), then run the environment check. Safe to run again: when requirements.txt and
# pyproject.toml are unchanged since the last successful install it only re-runs the check.
#
#   ./setup_env.sh              set up (or verify) the environment
#   ./setup_env.sh --kernel     also register a named Jupyter kernel "PyTorch Foundations (.venv)"
#                               for a JupyterLab installed outside .venv
#   PYTHON=python3.12 ./setup_env.sh   use another interpreter to create .venv
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
MIN_MAJOR=3
MIN_MINOR=10
VENV=.venv
STAMP=$VENV/.course-install-stamp
register_kernel=0
for arg in "$@"; do
  case "$arg" in
    --kernel) register_kernel=1 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown option '$arg' (expected --kernel or --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "setup_env.sh: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || fail "'$PYTHON' not found; install Python >= $MIN_MAJOR.$MIN_MINOR or set PYTHON=/path/to/python"
"$PYTHON" -c "import sys; sys.exit(sys.version_info < ($MIN_MAJOR, $MIN_MINOR))" \
  || fail "Python >= $MIN_MAJOR.$MIN_MINOR is required, '$PYTHON' is $("$PYTHON" -c 'import platform; print(platform.python_version())')"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c "import venv, ensurepip" 2>/dev/null \
    || fail "the Python 'venv' module (with ensurepip) is missing; on Debian/Ubuntu: sudo apt install python3-venv"
  echo "creating $VENV with $("$PYTHON" -c 'import platform; print(platform.python_version())')"
  "$PYTHON" -m venv "$VENV" || fail "could not create $VENV"
fi

wanted=$(cat requirements.txt pyproject.toml | "$VENV/bin/python" -c "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
  echo "requirements unchanged since the last install: nothing to install"
else
  echo "installing requirements into $VENV (first time: several GB, a few minutes)"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip || fail "could not upgrade pip in $VENV"
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt \
    || fail "pip could not install requirements.txt (see pip's message above; network or disk space?)"
  PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . \
    || fail "could not install course_lib in editable mode"
  echo "$wanted" > "$STAMP"
fi

if [ "$register_kernel" = 1 ]; then
  "$VENV/bin/python" -m ipykernel install --user --name pytorch-foundations \
    --display-name "PyTorch Foundations (.venv)" || fail "could not register the Jupyter kernel"
fi

"$VENV/bin/python" -m course_lib check-env || fail "environment check failed (see [FAIL] lines above)"
