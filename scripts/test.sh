#!/usr/bin/env bash
# Frontdesk's one test command (README, CI): bash scripts/test.sh [pytest args...]
#
# What it does, on a fresh Debian 12 machine as root (or with what is already there):
#   1. installs the real peers and services with apt (skipped when all are present),
#   2. installs Frontdesk with its test extras (pip install -e '.[test]') in .venv,
#   3. makes PostgreSQL answer on 127.0.0.1:5432 with a database "test"
#      (unless FRONTDESK_TEST_PG points elsewhere),
#   4. runs python -m pytest with your arguments on 4 pytest-xdist workers
#      (FRONTDESK_TEST_WORKERS=N to change, 0 for one process); "no tests collected" is a
#      failure.
# What it must never do: pass when tests did not run, or stop services it did not start.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

APT_PACKAGES=(sip-tester baresip-core linphone-cli espeak-ng sox sngrep kamailio
              postgresql redis-server tshark sipvicious)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) for: $*" >&2; return 1; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ---- 1. Debian packages ---------------------------------------------------------------
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    APT_PACKAGES+=(python3-venv python3-pip)   # Debian's python3 needs them for a venv
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
if [ "${#missing[@]}" -eq 0 ]; then
    say "apt: all ${#APT_PACKAGES[@]} packages already installed, skipping apt-get"
else
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=600 update
    as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi

# ---- 2. Python environment ------------------------------------------------------------
# scripts/env.sh makes .venv (Debian's python refuses system-wide pip, PEP 668) and runs
# pip install -e '.[test]' there when pyproject.toml changed since the last install.
say "python: .venv with pip install -e '.[test]' (scripts/env.sh)"
# shellcheck source=scripts/env.sh
. scripts/env.sh test
PY="$VENV/bin/python"
say "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

# ---- 3. Services ----------------------------------------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -n "${FRONTDESK_TEST_PG:-}" ]; then
    say "postgresql: using FRONTDESK_TEST_PG as given (not touching the local server)"
else
    if listening 5432; then
        say "postgresql: already listening on 127.0.0.1:5432"
    else
        version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        say "postgresql: starting cluster $version/main"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 1 60); do listening 5432 && break; sleep 0.5; done
        listening 5432 || { echo "postgresql did not start listening on 127.0.0.1:5432" >&2; exit 1; }
    fi
    pg() { psql -X -w -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -tAc "$1"; }
    if ! PGCONNECT_TIMEOUT=5 pg 'select 1' >/dev/null 2>&1; then
        # Debian's default pg_hba asks for a password on TCP; the test URL has none.
        hba="$(as_root runuser -u postgres -- psql -tAc 'show hba_file')"
        say "postgresql: allowing user postgres from 127.0.0.1 without password ($hba)"
        as_root sed -i '1i host all postgres 127.0.0.1/32 trust  # added by frontdesk scripts/test.sh' "$hba"
        as_root runuser -u postgres -- psql -tAc 'select pg_reload_conf()' >/dev/null
        sleep 1
    fi
    if [ "$(pg "select 1 from pg_database where datname = 'test'")" != "1" ]; then
        say "postgresql: creating database test"
        pg 'create database test' >/dev/null
    else
        say "postgresql: database test exists"
    fi
fi

if command -v redis-server >/dev/null && ! listening 6379; then
    say "redis: starting redis-server on 127.0.0.1:6379"
    as_root redis-server --bind 127.0.0.1 --port 6379 --daemonize yes >/dev/null
fi

# ---- 4. Tests -------------------------------------------------------------------------
export FRONTDESK_REQUIRE_PG=1       # PostgreSQL tests fail instead of skipping
export FRONTDESK_REQUIRE_PEERS=1    # real-phone tests fail instead of skipping
# Several pytest-xdist workers: most of the wall time is real phones talking in real time,
# which overlaps well; "worksteal" hands the long real-phone tests left at the end to idle
# workers. FRONTDESK_TEST_WORKERS=0 (or your own -n / -p no:xdist) runs serially.
workers="${FRONTDESK_TEST_WORKERS:-4}"
parallel=()
case " $* " in
    *" -n "*|*" -n"[0-9]*|*" --numprocesses"*|*" no:xdist "*|*" -pno:xdist "*) ;;
    *) if [ "$workers" != 0 ]; then parallel=(-n "$workers" --dist worksteal); fi ;;
esac
say "python -m pytest ${parallel[*]} $*"
set +e
"$PY" -m pytest "${parallel[@]}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "FAILED: pytest collected no tests (exit code 5) - check the arguments and tests/ paths" >&2
    exit 5
fi
if [ "$status" -ne 0 ]; then
    echo "FAILED: pytest exit code $status" >&2
else
    say "all tests passed"
fi
exit "$status"
