#!/usr/bin/env bash
# Set up the course environment in .venv: create it, install the locked stack (requirements.lock) and
# course_lib (editable), compiling the bytecode of what it installs, then run the environment check.
# Installs with uv: the one on PATH, else a pinned uv bootstrapped into .venv with pip; when uv cannot be
# had, with pip. Safe to run again: when requirements.lock and pyproject.toml are unchanged since the last
# successful install it only re-runs the check.
#
#   ./setup_env.sh              set up (or verify) the environment
#   ./setup_env.sh --kernel     also register a named Jupyter kernel "PyTorch Foundations (.venv)"
#                               for a JupyterLab installed outside .venv
#   PYTHON=python3.12 ./setup_env.sh   use another interpreter to create .venv (remove .venv to switch)
#
# Bytecode (.pyc) is compiled at install, because nothing else writes it where PYTHONDONTWRITEBYTECODE
# is set (CI, many Docker images): without it every kernel and FSDP rank compiles torch from source.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
MIN_MAJOR=3
MIN_MINOR=11  # the pins need it (ipykernel 7.4, numpy 2.4); the lock is resolved for Python >= 3.11
VENV=.venv
LOCK=requirements.lock
UV_VERSION=0.13.9  # bootstrapped into .venv when no uv is on PATH
STAMP=$VENV/.course-install-stamp
RECIPE=2  # how the stack is installed; a change (2: with bytecode) installs again into an existing .venv
register_kernel=0
for arg in "$@"; do
  case "$arg" in
    --kernel) register_kernel=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$(basename "$0")" | sed '$d'; exit 0 ;;  # after the cd above
    *) echo "setup_env.sh: unknown option '$arg' (expected --kernel or --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "setup_env.sh: error: $*" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then  # $PYTHON only makes .venv; once it exists, .venv's own Python is checked
  command -v "$PYTHON" >/dev/null 2>&1 || fail "'$PYTHON' not found; install Python >= $MIN_MAJOR.$MIN_MINOR or set PYTHON=/path/to/python"
  "$PYTHON" -c "import sys; sys.exit(sys.version_info < ($MIN_MAJOR, $MIN_MINOR))" \
    || fail "Python >= $MIN_MAJOR.$MIN_MINOR is required, '$PYTHON' is $("$PYTHON" -c 'import platform; print(platform.python_version())')"
  "$PYTHON" -c "import venv, ensurepip" 2>/dev/null \
    || fail "the Python 'venv' module (with ensurepip) is missing; on Debian/Ubuntu: sudo apt install python3-venv"
  echo "creating $VENV with $("$PYTHON" -c 'import platform; print(platform.python_version())')"
  "$PYTHON" -m venv "$VENV" || fail "could not create $VENV"
fi
"$VENV/bin/python" -c "import sys; sys.exit(sys.version_info < ($MIN_MAJOR, $MIN_MINOR))" 2>/dev/null \
  || fail "$VENV was made with Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '(broken)'); Python >= $MIN_MAJOR.$MIN_MINOR is required: remove $VENV and run this again"

# Print the uv to install with: uv on PATH, else the pinned one in .venv (installed with pip if needed).
find_uv() {
  if command -v uv 2>/dev/null; then return; fi
  if [ ! -x "$VENV/bin/uv" ]; then
    echo "installing uv==$UV_VERSION into $VENV with pip" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >/dev/null 2>&1 || return 0
  fi
  echo "$VENV/bin/uv"
}

wanted=$( (echo "recipe $RECIPE"; cat "$LOCK" pyproject.toml) | "$VENV/bin/python" -c "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
  echo "requirements unchanged since the last install: nothing to install"
else
  rm -f "$STAMP"
  uv=$(find_uv)
  if [ -n "$uv" ]; then
    echo "installing $LOCK into $VENV with $uv (first time: several GB)"
    "$uv" pip sync --quiet --python "$VENV/bin/python" --require-hashes --compile-bytecode "$LOCK" \
      || fail "uv could not install $LOCK (see uv's message above; network or disk space?)"
    "$uv" pip install --quiet --python "$VENV/bin/python" --no-deps --no-build-isolation -e . \
      || fail "could not install course_lib in editable mode"
  else
    echo "uv is not available (none on PATH, and pip could not install uv==$UV_VERSION): installing $LOCK with pip (slower)"
    "$VENV/bin/python" -m pip install --quiet -r "$LOCK" \
      || fail "pip could not install $LOCK (see pip's message above; network or disk space?)"
    # pip compiles what it installs, but not what an earlier install left without bytecode
    "$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null \
      || fail "could not compile the bytecode of $VENV"
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . \
      || fail "could not install course_lib in editable mode"
  fi
  echo "$wanted" > "$STAMP"
fi

if [ "$register_kernel" = 1 ]; then
  "$VENV/bin/python" -m ipykernel install --user --name pytorch-foundations \
    --display-name "PyTorch Foundations (.venv)" || fail "could not register the Jupyter kernel"
fi

# a failed check makes the next run install again (uv sync puts back what differs from the lock)
"$VENV/bin/python" -m course_lib check-env || { rm -f "$STAMP"; fail "environment check failed (see [FAIL] lines above)"; }
