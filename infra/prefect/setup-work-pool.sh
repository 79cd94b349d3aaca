#!/usr/bin/env bash
# Sets up scheduled builds on a Prefect server or Prefect Cloud: the work pool, the deployments of
# infra/prefect/prefect.yaml, and (optionally) a worker in this shell.
#   PREFECT_API_URL=http://prefect:4200/api infra/prefect/setup-work-pool.sh [--start-worker]
# Idempotent: an existing pool is kept, deployments are updated in place. In Kubernetes the worker
# runs as infra/k8s/prefect-worker.yaml instead of --start-worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
pool="${TESSY_WORK_POOL:-tessy-builds}"
prefect_bin="${PREFECT_BIN:-prefect}"
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect API (http://HOST:4200/api or a Cloud workspace URL)}"

if [ ! -f infra/prefect/build.yaml ] && [ ! -L infra/prefect/build.yaml ]; then
  echo "infra/prefect/build.yaml is missing: copy infra/prefect/build.example.yaml and edit it" >&2
  exit 2
fi
if ! "$prefect_bin" work-pool inspect "$pool" >/dev/null 2>&1; then
  "$prefect_bin" work-pool create "$pool" --type process
fi
# One build at a time per pool: builds of one dataset share its catalog and version numbers.
"$prefect_bin" work-pool set-concurrency-limit "$pool" 1
"$prefect_bin" --no-prompt deploy --prefect-file infra/prefect/prefect.yaml --all

if [ "${1:-}" = "--start-worker" ]; then
  exec "$prefect_bin" worker start --pool "$pool" --type process --with-healthcheck
fi
