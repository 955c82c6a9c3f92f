# Two commands do everything on a fresh machine:
#   make report   the whole catalog against the reference worker -> reports/latest/ (results.json, junit.xml, index.html)
#   make test     the whole test suite (with the report's browser test), plus type checks and the import-layering contracts
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: report test install browser jvm-peer clean go-peer

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[locust,dev,report]"
	touch $(STAMP)

install: $(STAMP)

# The HTML report's browser test drives Debian's chromium; installed here where it is absent (needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report's browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The stack-dump tests build a tiny Go peer (tests/go_peer) with Debian's Go; installed here where it is absent (needs root or sudo).
go-peer:
	@command -v go >/dev/null 2>&1 || { \
	  echo "installing Debian's golang-go for the Go test peer"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq golang-go >/dev/null; }

# The JVM worker test peer (tests/jvm_worker) compiles against Debian's JeroMQ and msgpack-java jars; installed here where absent.
jvm-peer:
	@[ -f /usr/share/java/jeromq.jar ] && [ -f /usr/share/java/msgpack-core.jar ] || { \
	  echo "installing Debian's libjeromq-java and libmsgpack-java for the JVM worker test peer"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libjeromq-java libmsgpack-java >/dev/null; }

report: $(STAMP)
	$(BIN)/locust-conformance run --worker reference

# Three stages. 1: the static checks and the sans-IO unit tests (CPU only, no real time), on both cores (pytest-xdist).
# 2: QUIET, alone: the tests that time heartbeats to 0.1-0.2 s, and the floods; measured on CI, any other process
# beside the first made them miss by 10-150 ms (a 0.162 s gap against 0.15 s, a Go stack dumped early, a flood's
# deadline), and a flood beside 1 s-paced workers made those late. 3: two pytest processes side by side, balanced
# (about 9 minutes each on CI): PACED (peers at Locust's own 1 s pace, real masters, the report's runs and browser:
# mostly waiting) and the rest, one test at a time. Niced, PACED's own 1 s peers missed, so neither is niced.
PURE_TESTS = tests/unit tests/test_layering.py
QUIET = tests/integration/test_bench_heartbeat_load.py tests/integration/test_reference_worker.py \
	tests/integration/test_stack_dumps.py tests/interop/test_locust_catalog.py tests/interop/test_locust_releases.py \
	tests/integration/test_bench_proxy.py
PACED = tests/interop/test_master_catalog.py tests/interop/test_foreign_workers.py tests/interop/test_proxy_real_master.py \
	tests/interop/test_master_swarm.py tests/interop/test_real_locust.py tests/interop/test_profile_traces.py \
	tests/interop/test_jvm_worker_smoke.py tests/interop/test_codec_crosscheck.py tests/integration/test_proxy_replay.py \
	tests/report
PYTEST = LC_REQUIRE_BROWSER=1 LC_REQUIRE_PEERS=1 HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest -p no:cacheprovider

# The real Locust masters each master profile is checked against (tests/interop/test_profile_traces.py), installed
# into the user's cache on first use; warmed here while the static checks and unit tests run.
OLD_LOCUSTS = 2.1.0 2.8.6 2.15.1 2.20.0

test: $(STAMP) browser go-peer jvm-peer
	@$(BIN)/python -m harness.locust_release $(OLD_LOCUSTS) > $(VENV)/old-locusts.log 2>&1 & pid=$$!; \
	  $(BIN)/ruff check . && $(BIN)/mypy && $(BIN)/lint-imports --no-cache && $(PYTEST) -n 2 $(PURE_TESTS); status=$$?; \
	  wait $$pid || cat $(VENV)/old-locusts.log; exit $$status
	$(PYTEST) --durations=5 $(QUIET)
	@$(PYTEST) --durations=10 $(PACED) > $(VENV)/paced.log 2>&1 & pid=$$!; \
	  $(PYTEST) --durations=15 $(addprefix --ignore=,$(PURE_TESTS) $(QUIET) $(PACED)); status=$$?; \
	  wait $$pid; paced=$$?; echo "--- beside them, at Locust's own pace: $(PACED)"; cat $(VENV)/paced.log; \
	  [ $$status = 0 ] && [ $$paced = 0 ]

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .hypothesis
