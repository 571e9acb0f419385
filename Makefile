# kubegate's Makefile. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       ?= bin
DEMO_DIR  ?= .demo
FUZZTIME  ?= 30s
# Debian packages the tests and the demo need; installed only when missing.
APT_PACKAGES ?= tmux asciinema

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install missing Debian packages (only those not installed)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

.PHONY: tools
tools: ## Build the pinned kube-apiserver, etcd and Dex into the cache (minutes when cold, instant when warm)
	@hack/build-tools.sh >/dev/null

.PHONY: build
build: ## Build kubegate and the test kubelet into bin/ (and bin/kubectl-kubegate, the kubectl plugin)
	$(GO) build -o $(BIN)/ ./cmd/...
	ln -sf kubegate $(BIN)/kubectl-kubegate

.PHONY: test
# The end-to-end tests run at production speed, without -race: the race
# detector slows the in-process gateway's masking of exec output about
# tenfold, which exposes an upstream SPDY truncation under a slow consumer
# (see the streams issue). Relays and cluster state have -race tests of their
# own in the first run.
test: deps tools ## Run all tests: unit, and end to end through the real kubectl against a real control plane
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e$$)
	$(GO) test -count=1 ./e2e/

.PHONY: demo
demo: deps tools ## Start a local cluster with kubegate in front, print what to try (Ctrl-C stops it)
	$(GO) build -o $(BIN)/kubegate ./cmd/kubegate
	$(BIN)/kubegate demo run --dir $(DEMO_DIR)

.PHONY: bench
bench: tools ## Run the benchmarks (micro-benchmarks beside the code, end-to-end comparisons in bench/)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: lint
lint: ## Check formatting (gofmt) and run go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: clean
clean: ## Remove build output and the demo directory
	rm -rf $(BIN) $(DEMO_DIR)
