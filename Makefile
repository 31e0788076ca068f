# The two commands a person needs: `make demo` and `make test`. Both install what is missing.
PY := .venv/bin/python

.PHONY: demo test lint deps unit image check-deploy fuzz chaos bench-producer bench-consumer bench-settings bench-latency clean

deps:
	@bash devstack/deps.sh

demo: deps
	@$(PY) -m devstack.demo

test: deps lint
	@$(PY) -m pytest -q

# ruff (style, imports, likely bugs) and mypy (types), configured in pyproject.toml
lint: deps
	@.venv/bin/ruff check .
	@.venv/bin/mypy

unit: deps
	@$(PY) -m pytest -q tests/unit

# The OCI image vb2po:<version> in build/image/vb2po (and build/vb2po-<version>.oci.tar), no Docker needed.
image: deps
	@$(PY) -m devstack.image build

# Property-based fuzzing of the real stack at full size (10,000 hostile records, 200 hostile rows); the
# test suite runs it small. Last line: fuzz: <N> cases, <d> dead-lettered, <c> crashed, ...
fuzz: deps
	@$(PY) -m tests.fuzz

# SIGKILLs, PowerOffice faults, a lost broker and a database hard stop on real processes (~20 min). Last line:
# chaos: <payments> payments, <kills> kills, <lost> lost, <dup> duplicate, <markers> markers, longest stall <s> s, drain <d> s
chaos: deps
	@$(PY) -m tests.chaos

check-deploy: deps
	@bash devstack/check_deploy.sh

bench-producer: deps
	@$(PY) -m bench.producer

bench-consumer: deps
	@$(PY) -m bench.consumer

bench-settings: deps
	@$(PY) -m bench.settings_change

# Commit -> Kafka -> PowerOffice latency, late commits, republications, 1 to 500 companies per producer (~15 min).
bench-latency: deps
	@$(PY) -m bench.latency

clean:
	rm -rf .venv build *.egg-info .pytest_cache
