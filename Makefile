# The two entry points a newcomer needs; each installs what it needs by itself.
.PHONY: demo test test-fast env vllm-env system

# The ray extra (prefect-ray, ray) is part of the dev env: the Ray runner test needs it.
env:
	TESSY_EXTRAS="$${TESSY_EXTRAS:-dev,ray}" scripts/setup-env.sh

system:
	scripts/setup-system.sh

vllm-env:
	infra/vllm/install-venv.sh .venvs/vllm cpu

# Build a dataset end to end on the small CPU model world (first run also builds the world).
demo: env vllm-env
	.venv/bin/tessy demo

# The whole suite, including the slow integration tests with real servers.
test: env vllm-env system
	.venv/bin/python -m pytest -q --durations=15

# Unit tests only (seconds).
test-fast: env
	.venv/bin/python -m pytest -q -m "not slow"
