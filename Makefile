# kubegate's Makefile. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       ?= bin
DEMO_DIR  ?= .demo
FUZZTIME  ?= 30s
# Debian packages the tests and the demo need; installed only when missing.
APT_PACKAGES ?= tmux asciinema chromium

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install missing Debian packages (only those not installed)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi
	@# node and npm build the console's assets and drive its browser test; a
	@# machine with another node distribution keeps it.
	@if ! command -v npm >/dev/null; then SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; fi

# The web console's third-party assets (asciinema-player, pinned in
# console/web/package-lock.json) are installed into the cache outside the
# repository and copied into console/ui/vendor/, which go:embed takes into
# the binary. Nothing is fetched at run time.
CONSOLE_VENDOR := console/ui/vendor
.PHONY: console-assets
console-assets: ## Install the console's pinned npm assets (cached) into console/ui/vendor
	@src=$$(hack/npm-cache.sh console/web)/node_modules/asciinema-player/dist/bundle; \
	mkdir -p $(CONSOLE_VENDOR); \
	for f in asciinema-player.min.js asciinema-player.css; do cmp -s $$src/$$f $(CONSOLE_VENDOR)/$$f || cp $$src/$$f $(CONSOLE_VENDOR)/$$f; done

.PHONY: console-e2e-deps
console-e2e-deps: ## Install playwright-core (pinned in console/e2e/package-lock.json) into the cache for the browser test
	@hack/npm-cache.sh console/e2e >/dev/null

.PHONY: tools
tools: ## Build the pinned kube-apiserver, etcd, Dex and versitygw (S3) into the cache (minutes when cold, instant when warm)
	@hack/build-tools.sh >/dev/null

.PHONY: build
build: console-assets ## Build kubegate and the test kubelet into bin/ (and bin/kubectl-kubegate, the kubectl plugin)
	$(GO) build -o $(BIN)/ ./cmd/...
	ln -sf kubegate $(BIN)/kubectl-kubegate

.PHONY: test
# The end-to-end tests run at production speed, without -race: the race
# detector slows the in-process gateway's masking of exec output about
# tenfold, which exposes an upstream SPDY truncation under a slow consumer
# (see the streams issue). Relays and cluster state have -race tests of their
# own in the first run.
test: deps tools console-assets console-e2e-deps ## Run all tests: unit, and end to end through the real kubectl against a real control plane
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e$$)
	$(GO) test -count=1 ./e2e/

.PHONY: demo
demo: deps tools console-assets ## Start a local cluster with kubegate in front, print what to try (Ctrl-C stops it)
	$(GO) build -o $(BIN)/kubegate ./cmd/kubegate
	$(BIN)/kubegate demo run --dir $(DEMO_DIR)

.PHONY: bench
# `make bench`: the micro-benchmarks beside the code, then bench/'s
# comparison of kubegate with direct access and with nginx (Debian's
# package, installed here like the other packages), then the report: a
# table on the terminal, BENCH_RESULTS/DATE.md and DATE.png. The defaults
# take about 10 minutes on 2 cores. Sizes and rounds are BENCH_* variables
# (bench/knobs_test.go), e.g. `make bench BENCH_ROUNDS=3
# BENCH_IDLE_SESSIONS=5000`; BENCH_RUN picks bench/'s benchmarks (a -bench
# regexp), BENCH_HA_N the approvals timed across three nodes. The commands
# hold no single quote, so the report shows them as they ran.
BENCH_RESULTS ?= bench/results
BENCH_RUN     ?= .
BENCH_HA_N    ?= 100
bench_micro   = $(GO) test -run=^$$ -bench=. -benchmem -count=1 $$($(GO) list ./... | grep -v -e /bench -e /e2e$$)
bench_compare = $(GO) test -run=^$$ -bench="$(BENCH_RUN)" -skip=BenchmarkHA -benchtime=1x -count=1 -timeout=0 ./bench/
bench_ha      = $(GO) test -run=^$$ -bench=BenchmarkHAApprovalToRelease -benchtime=$(BENCH_HA_N)x -count=1 -timeout=0 ./bench/
bench: APT_PACKAGES += nginx
bench: deps tools build ## Benchmarks: micro, then kubegate vs direct vs nginx; prints the table, writes bench/results/DATE.md and .png
	@set -o pipefail; raw=$$(mktemp); trap 'rm -f $$raw' EXIT; failed=0; \
	cmds=(-command '$(strip make bench $(MAKEOVERRIDES))'); \
	run() { echo "+ $$1"; cmds+=(-command "$$1"); eval "$$1" 2>&1 | tee -a $$raw || failed=1; }; \
	run '$(bench_micro)'; \
	run '$(bench_compare)'; \
	case "$(BENCH_RUN)" in .|*HA*) run '$(bench_ha)';; esac; \
	$(GO) run ./bench/report -out $(BENCH_RESULTS) "$${cmds[@]}" $$raw || failed=1; \
	exit $$failed

.PHONY: fuzz
# `make fuzz`: every Fuzz target of every package for FUZZTIME each, one at
# a time (FUZZ_PKGS narrows the packages). A package that does not build,
# or a target that finds a crasher, fails the run; the crasher is written
# to the package's testdata/fuzz/FuzzXxx/, where `go test` replays it.
# hack/fuzz-keep-corpus.sh then copies some of what the runs found from
# Go's fuzz cache into the same folders, to commit as seed corpora.
FUZZ_PKGS ?= ./...
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s); fails on a crasher
	@set -eo pipefail; for pkg in $$($(GO) list $(FUZZ_PKGS) | grep -v -e /e2e$$ -e /bench$$); do \
	  list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; exit 1; }; \
	  for f in $$(echo "$$list" | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: soak
# `make soak SOAK=10m`: mixed load (API calls, watches, exec sessions and
# port-forwards over both protocols) against kubegate as a child process
# in front of the test cluster, then checks that goroutines, open files
# and memory came back (bench/soak_test.go). Not part of `make test`.
SOAK ?= 1m
soak: deps tools ## Soak kubegate under mixed load for SOAK (default 1m); prints requests, sessions, errors, RSS, goroutines, fds
	KUBEGATE_SOAK=$(SOAK) $(GO) test -run '^TestSoak$$' -count=1 -timeout=0 -v ./bench/

.PHONY: lint
lint: ## Check formatting (gofmt) and run go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: clean
clean: ## Remove build output and the demo directory
	rm -rf $(BIN) $(DEMO_DIR)
