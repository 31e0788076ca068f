# The two commands a person needs: `make demo` and `make test`. Both install what is missing.
PY := .venv/bin/python

.PHONY: demo test deps unit image check-deploy bench-producer bench-consumer bench-settings bench-latency clean

deps:
	@bash devstack/deps.sh

demo: deps
	@$(PY) -m devstack.demo

test: deps
	@$(PY) -m pytest -q

unit: deps
	@$(PY) -m pytest -q tests/unit

# The OCI image vb2po:<version> in build/image/vb2po (and build/vb2po-<version>.oci.tar), no Docker needed.
image: deps
	@$(PY) -m devstack.image build

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
