# Entry points. `make demo` and `make test` run `make setup` first (idempotent).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV = source scripts/env.sh

.PHONY: setup demo perception-demo sim-eval test lint bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(ENV) 61 && python -m mimo_embodied_sim.demo --out out/demo

perception-demo: setup
	$(ENV) 61 && python -m mimo_embodied_sim.perception_demo --out out/perception_demo

sim-eval: setup
	$(ENV) 64 && python -m mimo_embodied_sim.sim_eval

# The closed-loop evaluations run after the rest, each file in a fresh process: they pace
# simulators in real time, and threads left by earlier tests would slow them.
CLOSED_LOOP_TESTS = mimo_embodied_sim/test/test_eval_pickplace.py mimo_embodied_sim/test/test_eval_navigation.py
PYTEST = python -m pytest -p no:cacheprovider --durations=10

test: setup
	$(ENV) 62 && ruff check . && failed=0 \
	  && { $(PYTEST) -m "not closed_loop" || failed=1; } \
	  && for f in $(CLOSED_LOOP_TESTS); do $(PYTEST) -m closed_loop "$$f" || failed=1; done \
	  && exit $$failed

lint: setup
	$(ENV) 62 && ruff check .

bench: setup
	$(ENV) 63 && python scripts/bench.py && python scripts/bench_trust.py && python scripts/bench_recording.py

clean:
	rm -rf build install log out build.log
