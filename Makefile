# berth — local platform and tests. Everything runs on this machine as root;
# state lives in .berth/ (git-ignored), slow-to-make caches in /var/cache/berth.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK := infra/local/stack.sh
PROCS := infra/local/processes.sh
export BERTH_ENV_FILE := $(CURDIR)/.berth/berth.env

# cargo may live in ~/.cargo/bin without being on PATH (e.g. under sudo or CI)
export PATH := $(PATH):$(HOME)/.cargo/bin

.PHONY: help up down test test-live bench-deploy bench-router bench-rollback bench-domain chaos lint status stack frontend

help:
	@echo "make up            install + start the stack, build and start berth (http://berth.localhost)"
	@echo "make test          start the stack, run every test"
	@echo "make down          stop berth and the stack (state in .berth/ is kept)"
	@echo "make bench-deploy  start the stack, run the deploy benchmark"
	@echo "make bench-router  start the stack, measure the edge router (failed requests during redeploys, latency)"
	@echo "make bench-rollback start the stack, time a crash loop's automatic rollback"
	@echo "make bench-domain  start the stack, time adding a custom domain until it serves over HTTPS (Pebble)"
	@echo "make chaos         the long fault suite, on a stack of its own (SEED=n replays a run)"
	@echo "make lint          rustfmt + clippy"
	@echo "make status        what is running"

stack:
	$(STACK) up

# The web UI (frontend/dist, git-ignored), served by the backend. npm ci runs
# again when package-lock.json is newer than what node_modules was made from.
# Vite needs Node.js 20.19 or newer (Debian 12's own nodejs is 18).
frontend:
	@if [[ -f frontend/package.json ]]; then \
	  if ! command -v npm >/dev/null || ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then \
	    echo "make frontend: the web UI needs Node.js >= 20.19 with npm (found: $$(node --version 2>/dev/null || echo none))" >&2; exit 1; \
	  fi; \
	  cd frontend && \
	  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then \
	    npm ci --no-audit --no-fund; \
	  fi && \
	  npm run build; \
	fi

up: stack frontend
	cargo build --bins
	$(PROCS) start
	@echo
	@echo "berth is running at http://berth.localhost (through the edge router) and http://127.0.0.1:8080"
	@echo "apps answer at http://<app>.<tenant>.localhost"
	@echo "create an account there; its confirmation mail lands in .berth/mail/new/"
	@echo "stop it with: make down"

down:
	$(PROCS) stop
	$(STACK) down
	@if [[ -d .berth-chaos ]]; then BERTH_STACK=chaos $(STACK) down; fi

# The end-to-end tests run the four real binaries from target/debug; the
# manifest tests (infra/kubernetes) use kubectl and kubernetes-validate.
test: stack
	$(MAKE) frontend
	@if [[ -f frontend/package.json ]]; then cd frontend && npm test; fi
	infra/local/k8s-tools.sh >/dev/null
	cargo build --bins
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --no-fail-fast; \
	else \
	  cargo test --workspace --no-fail-fast; \
	fi
	@if [ -n "$${KUBECONFIG:-}" ]; then $(MAKE) test-live; \
	else echo "skipped: the live Kubernetes tests (set KUBECONFIG to run them)"; fi

# The Kubernetes driver against the cluster KUBECONFIG names (kind will do);
# see deploy-worker/README.md.
test-live:
	cargo nextest run -p berth-deploy-worker --test kubernetes_live --run-ignored only --no-capture

# Measures berth's release build, so the figures are what an operator runs.
bench-deploy: stack
	cargo build --release --bins
	BERTH_BIN_DIR=$(CURDIR)/target/release cargo run --release -p berth-tests --bin bench-deploy

# Failed requests during redeploys under load, and the latency the edge
# router adds. Debug binaries are enough: no request passes through berth's
# own code, only through Caddy.
bench-router: stack
	cargo build --bins
	cargo run -p berth-tests --bin bench-router

# The automatic rollback's figures: from a release going live (then exiting
# 1 every 4 s) to the rollback serving, and from the crash loop noticed to
# the rollback live. The end-to-end test prints them.
bench-rollback: stack
	cargo build --bins
	cargo nextest run -p berth-tests --test auto_rollback --no-capture 2>&1 | grep -E '^from |PASS|FAIL'

# A custom domain's figure: from POST /apps/{id}/domains (and its TXT
# record) to the app answering over HTTPS with a certificate from Pebble,
# five times. The end-to-end test prints it.
bench-domain: stack
	cargo build --bins
	for run in 1 2 3 4 5; do \
	  cargo nextest run -p berth-tests --test custom_domains --no-capture 2>&1 | grep -E '^from |FAIL'; \
	done

# The long form of the fault suite (docs/faults.md). It crashes PostgreSQL,
# RabbitMQ, tansu and podman, so it runs on a stack of its own: .berth-chaos,
# every port 10 higher than make up's, PostgreSQL with durable settings.
chaos:
	BERTH_STACK=chaos $(STACK) up
	cargo build --bins
	BERTH_STACK=chaos BERTH_ENV_FILE=$(CURDIR)/.berth-chaos/berth.env BERTH_KEEP_E2E=1 \
	  $(if $(SEED),BERTH_CHAOS_SEED=$(SEED)) cargo run -p berth-tests --bin chaos

lint:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings

status:
	@$(STACK) status
	@$(PROCS) status
