# The two commands a user needs: `make demo` and `make test`. Both install what they need:
# Python test tools go into .venv (from tests/requirements.txt, pinned).

VENV        := .venv
PYTHON      := $(VENV)/bin/python
VENV_STAMP  := $(VENV)/.installed-$(shell cksum < tests/requirements.txt | cut -d' ' -f1)
CARGO       ?= cargo
export ATLAS_RUNNER_PYTHON := $(abspath $(PYTHON))

.PHONY: test demo lint fmt check-fmt clippy unit venv clean build deploy lint-infra bench fuzz

## test: everything CI runs (format, lints, every test)
# (clippy --all-targets also builds the demo example; `cargo test` runs lib, bin and tests/)
# (examples are built first: the Runtime API harness's tests run examples/hello_lambda)
test: check-fmt clippy venv lint-infra browser
	$(CARGO) build --examples
	$(CARGO) test --lib --bins --tests

## browser: a headless Chromium for tests/drill_report_browser.rs: the one on the PATH, else
## installed where that is possible (Debian or Ubuntu, as root); otherwise the test fails unless
## ATLAS_RUNNER_ALLOW_NO_BROWSER=1 (never under CI=true) says to skip it knowingly.
.PHONY: browser
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
		|| [ -n "$$ATLAS_RUNNER_CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the drill report's browser test (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null \
			|| { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null; }; \
	else \
		echo "no Chromium and no way to install one here: tests/drill_report_browser.rs will fail (set ATLAS_RUNNER_ALLOW_NO_BROWSER=1 to skip it knowingly; never under CI)" >&2; \
	fi

## demo: every sample in events/ sent to the function under `cargo lambda watch`, on 127.0.0.1,
## against moto and the Atlas double; prints each answer and what reached the topic, then stops
# (cargo-lambda comes from PyPI into .venv, pinned in requirements-demo.txt)
demo: demo-venv
	$(CARGO) run --quiet --example demo

## demo-serve: the same, then stays up (on 127.0.0.1:9000 when free) for `make invoke` until Ctrl-C
demo-serve: demo-venv
	$(CARGO) run --quiet --example demo -- --serve

## invoke: send one sample to a running function, signed now: make invoke EVENT=events/<file>.json
##   [ADDRESS=127.0.0.1:9000] (the signing secret: $WEBHOOK_SIGNING_SECRET, else the demo's)
ADDRESS ?= 127.0.0.1:9000
DEMO_SIGNING_SECRET := local-demo-signing-secret
invoke:
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/<file>.json [ADDRESS=127.0.0.1:9000]" >&2; exit 2; }
	WEBHOOK_SIGNING_SECRET="$${WEBHOOK_SIGNING_SECRET:-$(DEMO_SIGNING_SECRET)}" \
		$(CARGO) run --quiet --example send_event -- "$(EVENT)" --address "$(ADDRESS)"

.PHONY: demo-serve invoke demo-venv
DEMO_STAMP  := $(VENV)/.demo-installed-$(shell cksum < requirements-demo.txt | cut -d' ' -f1)

demo-venv: $(DEMO_STAMP)

# .venv is remade when tests/requirements.txt changes, which takes this stamp with it.
$(DEMO_STAMP): $(VENV_STAMP) requirements-demo.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-input -r requirements-demo.txt
	$(VENV)/bin/cargo-lambda lambda --version
	touch $@

venv: $(VENV_STAMP)

$(VENV_STAMP): tests/requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-input -r tests/requirements.txt
	touch $@

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV)
	rm -rf $(INFRA_VENV)

# --- infra/ (AWS SAM): build, deploy, lint ------------------------------------------------------
# cfn-lint, checkov and AWS SAM's translator (samtranslator) live in a venv of their own
# (infra/.venv, from infra/requirements.txt), so their pins never meet the test tools' in .venv.
# tests/infra_translate.rs runs the translator with this interpreter; `make test` installs it
# first (through lint-infra).
INFRA_VENV  := infra/.venv
INFRA_STAMP := $(INFRA_VENV)/.installed-$(shell cksum < infra/requirements.txt | cut -d' ' -f1)
export ATLAS_RUNNER_INFRA_PYTHON := $(abspath $(INFRA_VENV)/bin/python)

## build: the arm64 bundle infra/template.yaml deploys: target/lambda/bootstrap/bootstrap.zip
# (cargo-lambda and zig come from PyPI into .venv with the demo's tools: requirements-demo.txt)
build: demo-venv
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip --lambda-dir target/lambda

## deploy: `sam deploy` of infra/template.yaml; the first time guided (it writes infra/samconfig.toml)
## and offering STACK_NAME (default atlas-restore-runner, the name the README's commands use)
# Needs the AWS SAM CLI and AWS credentials; nothing else in this Makefile does.
# (sam's guided deploy offers --stack-name as the default answer, else "sam-app".)
STACK_NAME ?= atlas-restore-runner
deploy: build
	@command -v sam >/dev/null || { echo "make deploy needs the AWS SAM CLI (sam) on PATH; see the README's Deploy section" >&2; exit 1; }
	cd infra && if [ -f samconfig.toml ]; then sam deploy; else sam deploy --guided --stack-name "$(STACK_NAME)"; fi

## lint-infra: cfn-lint and checkov on infra/template.yaml, offline, no errors allowed
# checkov: --skip-download (and BC_SKIP_MAPPING) keep it from fetching guidelines and policies.
lint-infra: $(INFRA_STAMP)
	$(INFRA_VENV)/bin/cfn-lint infra/template.yaml
	BC_SKIP_MAPPING=TRUE $(INFRA_VENV)/bin/checkov --file infra/template.yaml --framework cloudformation --skip-download --compact --quiet

$(INFRA_STAMP): infra/requirements.txt
	rm -rf $(INFRA_VENV)
	python3 -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-input -r infra/requirements.txt
	touch $@

# --- bench: performance, never part of `make test` ------------------------------------------------
## bench: package size, start-up, peak RSS and warm path of the real bootstrap beside a hello-world
## function (through a local Lambda Runtime API, against moto and the Atlas double), and criterion
## benchmarks of the core; prints a table and writes it into docs/PERFORMANCE.md. Takes minutes.
# Honours CARGO_TARGET_DIR. When the arm64 package cannot be built (no aarch64 target or zig),
# the report says so and keeps going with the x86_64 binary's size.
BENCH_TARGET := $(abspath $(or $(CARGO_TARGET_DIR),target))
BENCH_LAMBDA := $(BENCH_TARGET)/lambda-bench
bench: demo-venv
	rm -f $(BENCH_LAMBDA)/bootstrap/bootstrap.zip $(BENCH_TARGET)/aarch64-unknown-linux-gnu/release/bootstrap
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip --lambda-dir $(BENCH_LAMBDA) \
		|| echo "bench: the arm64 package could not be built; only the x86_64 binary is measured" >&2
	$(CARGO) build --release --bin bootstrap --example hello_lambda
	$(CARGO) bench --bench core
	BENCH_BOOTSTRAP=$(BENCH_TARGET)/release/bootstrap \
	BENCH_HELLO=$(BENCH_TARGET)/release/examples/hello_lambda \
	BENCH_ARM64_BINARY=$(BENCH_TARGET)/aarch64-unknown-linux-gnu/release/bootstrap \
	BENCH_ARM64_ZIP=$(BENCH_LAMBDA)/bootstrap/bootstrap.zip \
	BENCH_CRITERION_DIR=$(BENCH_TARGET)/criterion \
	BENCH_COMMAND="make bench" \
		$(CARGO) bench --bench lambda

# --- fuzz: never part of `make test` -------------------------------------------------------------
## fuzz: the cargo-fuzz targets in fuzz/ (event: the handler's routing of a raw event, webhook
## and queue verification, validation, policy and the runner, with fakes of the ports; command:
## strict parsing, validation and the fingerprint; signature: webhook signature headers and
## verification), one after the other, FUZZ_SECONDS each (default 240), then each corpus
## minimised into fuzz/corpus/<target> (commit it). Crashes land in fuzz/artifacts/<target>.
## tests/properties.rs runs the same properties briefly on every `make test`.
# The stable toolchain builds libFuzzer's sanitizer flags with RUSTC_BOOTSTRAP=1; cargo-fuzz comes
# from crates.io, pinned. One job at a time: these machines have two cores.
FUZZ_SECONDS    ?= 240
FUZZ_TARGETS    ?= event command signature
FUZZ_TARGET_DIR ?= $(abspath $(or $(CARGO_TARGET_DIR),target))/fuzz
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_CARGO := cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)
	python3 fuzz/seeds.py
	for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target; \
		if [ -d fuzz/seeds/$$target ]; then cp fuzz/seeds/$$target/* fuzz/corpus/$$target/; fi; \
		( $(FUZZ_CARGO) run --fuzz-dir . $$target corpus/$$target -- -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 -timeout=10 -max_len=16384 -close_fd_mask=1 ) || exit 1; \
		( $(FUZZ_CARGO) cmin --fuzz-dir . $$target corpus/$$target ) || exit 1; \
	done
