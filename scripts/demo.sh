#!/usr/bin/env bash
# Start Frontdesk with a demo tenant on SQLite (data in ./frontdesk-data).
# Prints the extensions and their SIP passwords, then serves SIP on 127.0.0.1:5060.
# Extra arguments go to `frontdesk demo` (e.g. --sip 0.0.0.0:5060).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh base
exec frontdesk demo "$@"
