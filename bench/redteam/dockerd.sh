#!/usr/bin/env bash
# A dockerd private to this worktree (its own data root, exec root, pidfile and
# socket), so it never meets another helper's daemon.
#   bash bench/redteam/dockerd.sh start|stop|status
# Then: export DOCKER_HOST=unix://$REPO/bench/out/docker.sock (build.py does it itself).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$REPO/.dockerd"
SOCK="$REPO/bench/out/docker.sock"
case "${1:-status}" in
  start)
    mkdir -p "$D/exec" "$REPO/bench/out"
    if [[ -s "$D/docker.pid" ]] && kill -0 "$(cat "$D/docker.pid")" 2>/dev/null; then echo "running: $(cat "$D/docker.pid")"; exit 0; fi
    nohup dockerd --data-root "$REPO/bench/out/dockerd" --host "unix://$SOCK" --iptables=false --bridge=none \
      --exec-root "$D/exec" --pidfile "$D/docker.pid" >"$D/dockerd.log" 2>&1 &
    for _ in $(seq 30); do [[ -S "$SOCK" ]] && break; sleep 1; done
    DOCKER_HOST="unix://$SOCK" /usr/bin/docker version --format '{{.Server.Version}}' ;;
  stop)
    [[ -s "$D/docker.pid" ]] && kill "$(cat "$D/docker.pid")" && echo stopped ;;
  status)
    [[ -s "$D/docker.pid" ]] && kill -0 "$(cat "$D/docker.pid")" 2>/dev/null && echo "running: $(cat "$D/docker.pid")" || echo "not running" ;;
esac
