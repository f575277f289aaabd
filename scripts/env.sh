# Sourced by scripts/demo.sh and scripts/test.sh: make a virtualenv in .venv with Frontdesk
# installed (Debian 12's system Python refuses `pip install` outside a venv, PEP 668).
# Usage: . scripts/env.sh EXTRAS   e.g. ". scripts/env.sh test", or ". scripts/env.sh base"
# (always pass an argument: a sourced script without one sees the caller's arguments)
set -euo pipefail
FRONTDESK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FRONTDESK_VENV:-$FRONTDESK_ROOT/.venv}"
extras="${1:-base}"
[ "$extras" = base ] && extras=""
case "$extras" in ""|[a-z]*) ;; *) echo "scripts/env.sh: bad extras '$extras'" >&2; exit 2;; esac

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Frontdesk needs Python 3.11 or newer (python3 is $(python3 --version 2>&1))" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        echo "== installing python3-venv (Debian package)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
    fi
    echo "== creating virtualenv $VENV"
    python3 -m venv "$VENV"
fi
spec="$FRONTDESK_ROOT"
[ -n "$extras" ] && spec="$FRONTDESK_ROOT[$extras]"
stamp="$VENV/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ "$FRONTDESK_ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "== installing Frontdesk ${extras:+with [$extras] }into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$spec"
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
