#!/usr/bin/env bash
# The quick-start demo: a real two-step workflow on the local backend, start to finish, in a
# temporary directory that is removed afterwards. Needs batchd/batchctl on PATH (`make demo`).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/batchd-demo.XXXXXX)"
export BATCHD_SOCKET="$work/batchd.sock" BATCHD_STATE_DIR="$work/state"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cp -r "$here/examples/demo" "$work/demo"
echo "==> starting batchd (local backend) in $work"
batchd --backend local --poll-interval 0.5 --log-format json >"$work/batchd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
  batchctl ping >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/batchd.log"; exit 1; }
  sleep 0.1
done
batchctl ping

run() { echo "\$ $*"; "$@"; }
run batchctl jobdef register "$work/demo/jobdefs/count-words.json"
run batchctl jobdef register "$work/demo/jobdefs/summarise.json"
run batchctl import demo --metadata "$work/demo/samples.csv"
run batchctl create demo --definition "$work/demo/workflow.json"
run batchctl submit demo/wordcount
run batchctl status demo/wordcount --watch 1
run batchctl status demo/wordcount --jobs
run batchctl dashboard --all
echo "==> outputs"
cat "$work"/demo/results/demo/*.summary.txt
echo "==> stopping batchd"
batchctl daemon stop >/dev/null
wait "$daemon_pid"
daemon_pid=""
echo "demo finished: every job COMPLETED"
