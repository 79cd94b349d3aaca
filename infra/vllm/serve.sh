#!/usr/bin/env bash
# Starts one vLLM OpenAI-compatible server for the teacher or the student on a GPU node, in the
# foreground (the container entry point of infra/docker/Dockerfile.vllm and infra/k8s).
#
#   infra/vllm/serve.sh teacher|student            # run it
#   infra/vllm/serve.sh --print teacher|student    # print the command line, start nothing
#
# Every setting is an environment variable; the role picks the defaults (the paper's node:
# GPT-OSS-120B teacher and Qwen3-8B student sharing one 8-GPU node, see docs/sizing.md):
#   MODEL                  model folder (a mounted volume) or hub id
#   SERVED_MODEL_NAME      the `model` clients send (tessy: ModelConfig.served_model_name)
#   HOST, PORT             where it listens (teacher 8000, student 8001)
#   TENSOR_PARALLEL_SIZE   GPUs one replica spans (CUDA_VISIBLE_DEVICES picks which)
#   GPU_MEMORY_UTILIZATION share of each GPU's memory this server may take. Two servers on the same
#                          GPUs must add up to at most ~0.95 (e.g. teacher 0.60 + student 0.30)
#   MAX_MODEL_LEN          prompt + completion tokens (a trace reaches ~40K with the answer)
#   MAX_NUM_SEQS           sequences batched at once (>= the build's samples in flight per replica)
#   MAX_LOGPROBS           top-k logprobs a request may ask for
#   API_SERVER_COUNT       API processes in front of the engine (teacher 4: a TESSY build sends it
#                          every other span request; more than 1 runs `vllm serve --api-server-count`)
#   EXTRA_ARGS             appended as is (word-split)
#   VLLM_PYTHON            python of the vLLM environment (infra/vllm/install-venv.sh VENV gpu)
# Prefix caching is always on: every TESSY step resends the whole trace so far, and only the cache
# keeps that from being recomputed (docs/sizing.md has the arithmetic).
set -euo pipefail

print_only=0
if [ "${1:-}" = "--print" ]; then print_only=1; shift; fi
role="${1:-}"
case "$role" in
  teacher)
    : "${MODEL:=openai/gpt-oss-120b}" "${SERVED_MODEL_NAME:=gpt-oss-120b}" "${PORT:=8000}"
    : "${TENSOR_PARALLEL_SIZE:=4}" "${GPU_MEMORY_UTILIZATION:=0.90}" "${MAX_NUM_SEQS:=256}" "${API_SERVER_COUNT:=4}" ;;
  student)
    : "${MODEL:=Qwen/Qwen3-8B}" "${SERVED_MODEL_NAME:=qwen3-8b}" "${PORT:=8001}"
    : "${TENSOR_PARALLEL_SIZE:=1}" "${GPU_MEMORY_UTILIZATION:=0.90}" "${MAX_NUM_SEQS:=256}" "${API_SERVER_COUNT:=1}" ;;
  *)
    echo "usage: $0 [--print] teacher|student   (settings from the environment, see the header)" >&2
    exit 2 ;;
esac
: "${HOST:=0.0.0.0}" "${MAX_MODEL_LEN:=40960}" "${MAX_LOGPROBS:=20}" "${EXTRA_ARGS:=}"
: "${VLLM_PYTHON:=python3}"

for number in PORT TENSOR_PARALLEL_SIZE MAX_MODEL_LEN MAX_NUM_SEQS MAX_LOGPROBS API_SERVER_COUNT; do
  if ! [[ "${!number}" =~ ^[1-9][0-9]*$ ]]; then
    echo "$number must be a positive integer, got '${!number}'" >&2; exit 2
  fi
done
if ! awk -v u="$GPU_MEMORY_UTILIZATION" 'BEGIN { exit !(u > 0 && u <= 1) }'; then
  echo "GPU_MEMORY_UTILIZATION must be in (0, 1], got '$GPU_MEMORY_UTILIZATION'" >&2; exit 2
fi

# Several API processes need `vllm serve`'s entry point; one runs in the server module itself.
entry=(-m vllm.entrypoints.openai.api_server)
api_servers=()
if [ "$API_SERVER_COUNT" -gt 1 ]; then
  entry=(-m vllm.entrypoints.cli.main serve)
  api_servers=(--api-server-count "$API_SERVER_COUNT")
fi
# shellcheck disable=SC2206 # EXTRA_ARGS is a word list by design
cmd=(
  "$VLLM_PYTHON" "${entry[@]}"
  --model "$MODEL"
  --served-model-name "$SERVED_MODEL_NAME"
  --host "$HOST" --port "$PORT"
  --tensor-parallel-size "$TENSOR_PARALLEL_SIZE"
  --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION"
  --max-model-len "$MAX_MODEL_LEN"
  --max-num-seqs "$MAX_NUM_SEQS"
  --max-logprobs "$MAX_LOGPROBS"
  --enable-prefix-caching
  --disable-uvicorn-access-log
  "${api_servers[@]}"
  $EXTRA_ARGS
)

if [ "$print_only" = 1 ]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# Span requests send the end-of-thinking markers and the predictors' handover stops (vLLM allows 4 by default).
export VLLM_MAX_STOP_STRINGS="${VLLM_MAX_STOP_STRINGS:-64}"
# A mounted model folder needs no hub access (and nodes often have none).
if [ -d "$MODEL" ]; then export HF_HUB_OFFLINE=1; fi
exec "${cmd[@]}"
