# Two commands: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/llmjobs run

# The worker's tests run a second time with the fast paths off (procrastinate's and litellm's
# public behaviour alone), as a release of either that changed an internal would make them.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile
	LLMJOBS_WORKER_FAST_PATH=0 LLMJOBS_LITELLM_FAST_PATH=0 $(BIN)/python -m pytest -q \
		-n 2 --dist loadfile -m "not fast_path" \
		tests/integration/test_worker.py tests/integration/test_recovery.py \
		tests/integration/test_queue_pause.py tests/unit/test_model_calls.py \
		tests/unit/test_call_executor.py \
		tests/integration/test_limits.py::test_waiting_for_a_limit_is_not_failing \
		tests/integration/test_limits.py::test_a_limit_raised_reaches_a_running_worker \
		tests/integration/test_limits.py::test_a_429_pauses_the_model_for_every_job

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
