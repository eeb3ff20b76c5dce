# orderflow: every target here is what CI runs, so a green `make test` locally is a
# green CI. Two commands matter: `make dev` (run the system) and `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

DDB_PORT ?= 8000
MOTO_PORT ?= 5050
LOCAL := .local
TOOLS := $(LOCAL)/venv-tools/bin

# The SDK's standard variables: every adapter, test and the CLI reach the emulators
# through these alone. Set them yourself to point at LocalStack instead.
export ORDERFLOW_DYNAMODB_PORT := $(DDB_PORT)
export ORDERFLOW_MOTO_PORT := $(MOTO_PORT)
export AWS_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= local
export AWS_SECRET_ACCESS_KEY ?= local
export AWS_ENDPOINT_URL ?= http://127.0.0.1:$(MOTO_PORT)
export AWS_ENDPOINT_URL_DYNAMODB ?= http://127.0.0.1:$(DDB_PORT)
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS ?= http://127.0.0.1:$(DDB_PORT)
export SAM_CLI_TELEMETRY := 0

FUNCTIONS := relay order-api inventory payment shipping order-saga projector pending-timeout

# What `make build` holds every function to: just above the largest (the order API,
# 6.10 MB as sam builds it since it seals personal data; 1.4x to 1.8x hello's init
# from run to run), so nothing grows further. The target is 6 MB and 1.5x
# (`orderflow-dev footprint`'s defaults): every consumer's size meets it, the order API's
# does not, and init ratios move by 0.2 to 0.4 between runs; docs/performance.md, "Footprint".
FOOTPRINT_MAX_BYTES ?= 6200000
FOOTPRINT_MAX_INIT_RATIO ?= 2.5
FOOTPRINT_RUNS ?= 60
FOOTPRINT_BUDGET = --runs $(FOOTPRINT_RUNS) --max-bytes $(FOOTPRINT_MAX_BYTES) --max-init-ratio $(FOOTPRINT_MAX_INIT_RATIO)

NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)

# Every debug binary and test of the workspace in one selection. Features unify the
# same way each time, so a CI run compiles each crate once: a `-p` selection leaves out
# the tests' tokio `test-util` and builds the SDK and everything above it a second time.
# The checks below run their binaries from this build, and the e2e tests ask cargo for
# theirs with the same selection.
BUILD_DEBUG := cargo build --locked --workspace --bins --tests
DEBUG_BIN := $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: help
help: ## This list.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

.PHONY: install
install: ## Install the pinned emulators (DynamoDB Local, moto) into .local/.
	@infra/local/emulators.sh install

.PHONY: tools
tools: ## Install the pinned template tools (sam, cfn-lint, checkov, cargo-lambda) into .local/.
	@infra/local/emulators.sh install-tools

.PHONY: emulators
emulators: ## Start the emulators (harmless when already running).
	@infra/local/emulators.sh start

.PHONY: stop
stop: ## Stop the emulators.
	@infra/local/emulators.sh stop

.PHONY: dev
dev: emulators ## Run orderflow locally: resources from template.yaml, the API on :3000, every handler.
	cargo run --quiet --locked -p orderflow-devtools -- up

.PHONY: browser
browser: ## Install Debian's Chromium and Playwright (pinned) for the operations page's test.
	@infra/local/browser.sh

.PHONY: test
test: install browser ## Every test, against emulators this target starts (and stops).
	@# Built before the run, so no test's time limit is charged with the build.
	$(BUILD_DEBUG)
ifeq ($(NEXTEST),yes)
	infra/local/with-emulators.sh cargo nextest run --workspace --locked --profile ci
else
	infra/local/with-emulators.sh cargo test --workspace --locked
endif

SEEDS ?= 100
.PHONY: simulate
simulate: ## The whole system in memory: SEEDS seeded schedules with faults, every invariant checked (SEED=n replays one, with its trace).
	@$(BUILD_DEBUG) --quiet
	$(DEBUG_BIN)/simulate $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

MUTANT_SEEDS ?= 200
.PHONY: simulate-mutants
simulate-mutants: ## The simulation's teeth: with each bug planted in a port, some seed of MUTANT_SEEDS must break an invariant.
	@$(BUILD_DEBUG) --quiet
	$(DEBUG_BIN)/simulate --mutants --seeds $(MUTANT_SEEDS)

CARGO_MUTANTS_VERSION = 27.1.0
CARGO_MUTANTS = .local/cargo-tools/bin/cargo-mutants
# The domain and the consumers' decision code; .cargo/mutants.toml says which suites test each mutant.
MUTATE ?= -p orderflow-domain -p inventory -p payment -p order-saga -p projector -p shipping
.PHONY: mutants
mutants: ## Mutation testing with cargo-mutants (pinned) over MUTATE's code (about an hour on 2 cores; not run by CI); the lists of caught, missed, unviable and timed-out mutants are written to docs/mutants/.
	@test -x $(CARGO_MUTANTS) && $(CARGO_MUTANTS) mutants --version | grep -q ' $(CARGO_MUTANTS_VERSION)$$' \
	  || cargo install --quiet --locked cargo-mutants --version $(CARGO_MUTANTS_VERSION) --root .local/cargo-tools
	$(BUILD_DEBUG)
	$(CARGO_MUTANTS) mutants $(MUTATE) -j 2 -o .local/mutants; status=$$?; \
	  mkdir -p docs/mutants && cp .local/mutants/mutants.out/{caught,missed,timeout,unviable}.txt docs/mutants/; \
	  exit $$status

.PHONY: schemas
schemas: ## Write the contracts from the code: openapi.json and events/schemas/ (never over a published version with a breaking change).
	$(BUILD_DEBUG)
	$(DEBUG_BIN)/orderflow-contracts write

.PHONY: schema-check
schema-check: ## The contract gate: committed contracts are what the code generates, no breaking change without a new version, upcaster and corpus event, every consumer reads what it is sent.
	$(BUILD_DEBUG)
	$(DEBUG_BIN)/orderflow-contracts check

FUZZ_EXAMPLES ?= 40
.PHONY: fuzz
fuzz: install ## Fuzzing from the contract: schemathesis against orderflow-dev up, as a customer and as an operator (FUZZ_EXAMPLES per operation, FUZZ_SEED to replay).
	@infra/local/emulators.sh install-fuzz
	$(BUILD_DEBUG)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) infra/local/with-emulators.sh infra/local/fuzz.sh

.PHONY: check-lambda-watch
check-lambda-watch: install tools ## The cargo lambda watch loop, end to end (an order placed and confirmed).
	infra/local/with-emulators.sh infra/local/lambda-watch-check.sh

.PHONY: fmt
fmt: ## Check formatting.
	cargo fmt --all --check

.PHONY: clippy
clippy: ## Lints, warnings as errors.
	cargo clippy --workspace --all-targets --locked -- -D warnings

.PHONY: doc
doc: ## API docs, warnings as errors.
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

.PHONY: lint-template
lint-template: tools ## cfn-lint, `sam validate --lint` and checkov on template.yaml.
	$(TOOLS)/cfn-lint template.yaml
	$(TOOLS)/sam validate --lint --template-file template.yaml --region $(AWS_REGION)
	@# checkov exits 0 on a template it cannot parse: that counts as a failure here.
	@out="$$($(LOCAL)/venv-checkov/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download 2>&1)"; \
	  rc=$$?; echo "$$out"; test $$rc -eq 0 && ! echo "$$out" | grep -q "Parsing errors"

.PHONY: build
build: tools ## sam build: every function's bootstrap, built by cargo-lambda; then each one's size and init time beside a hello-world function's (fails over budget).
	PATH="$(CURDIR)/$(TOOLS):$$PATH" SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 $(TOOLS)/sam build --beta-features --template-file template.yaml
	@for fn in $$(grep -E '^  [A-Za-z]+Function:$$' template.yaml | tr -d ' :'); do \
	  test -s .aws-sam/build/$$fn/bootstrap || { echo "sam build produced no bootstrap for $$fn"; exit 1; }; \
	done
	@# The baseline, built the same way: cargo-lambda, the same release profile.
	PATH="$(CURDIR)/$(TOOLS):$$PATH" cargo lambda build --release --locked --bin hello-lambda
	$(BUILD_DEBUG)
	$(DEBUG_BIN)/orderflow-dev footprint $(FOOTPRINT_BUDGET) --baseline target/lambda/hello-lambda/bootstrap \
	  $$(grep -E '^  [A-Za-z]+Function:$$' template.yaml | tr -d ' :' | sed 's|.*|.aws-sam/build/&/bootstrap|')

.PHONY: footprint
footprint: ## The same measure on plain `cargo build --release` binaries, without sam (quicker to iterate on).
	cargo build --release --locked -p hello-lambda $(foreach f,$(FUNCTIONS),-p $(f))
	$(BUILD_DEBUG)
	$(DEBUG_BIN)/orderflow-dev footprint $(FOOTPRINT_BUDGET) --baseline target/release/hello-lambda $(addprefix target/release/,$(FUNCTIONS))

.PHONY: lint
lint: fmt clippy doc lint-template ## Everything CI checks besides the tests.

.PHONY: bench
bench: install ## Benchmarks, each beside its baseline: handler CPU vs serde_json, 10k-event loads, reservations on one SKU vs many.
	infra/local/with-emulators.sh cargo bench --locked -p orderflow-adapters --bench event_path --bench hot_sku

.PHONY: ci
ci: fmt clippy test schema-check fuzz simulate lint-template doc build ## What .ci/run runs.
