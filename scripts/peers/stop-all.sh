#!/usr/bin/env bash
# Stop every peer server started by llamacpp.sh / litellm.sh / prism.sh, using the PIDs they
# recorded in $PEERS_ROOT/run/NAME-PORT.pid (never by process name).
# Usage: stop-all.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
shopt -s nullglob
files=("$PEERS_RUN"/*.pid)
[ ${#files[@]} -gt 0 ] || { echo "no peer servers recorded in $PEERS_RUN"; exit 0; }
for pf in "${files[@]}"; do
  base="$(basename "$pf" .pid)"   # NAME-PORT
  stop_bg "${base%-*}" "${base##*-}"
done
