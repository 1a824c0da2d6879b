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

test: setup
	$(ENV) 62 && ruff check . && python -m pytest -p no:cacheprovider

lint: setup
	$(ENV) 62 && ruff check .

bench: setup
	$(ENV) 63 && python scripts/bench.py && python scripts/bench_trust.py && python scripts/bench_recording.py

clean:
	rm -rf build install log out build.log
