# The two commands a user needs: `make demo` and `make test`. Both install what they need:
# Python test tools go into .venv (from tests/requirements.txt, pinned).

VENV        := .venv
PYTHON      := $(VENV)/bin/python
VENV_STAMP  := $(VENV)/.installed-$(shell cksum < tests/requirements.txt | cut -d' ' -f1)
CARGO       ?= cargo
export ATLAS_RUNNER_PYTHON := $(abspath $(PYTHON))

.PHONY: test demo lint fmt check-fmt clippy unit venv clean

## test: everything CI runs (format, lints, every test)
# (clippy --all-targets also builds the demo example; `cargo test` runs lib, bin and tests/)
# (examples are built first: the Runtime API harness's tests run examples/hello_lambda)
test: check-fmt clippy venv
	$(CARGO) build --examples
	$(CARGO) test --lib --bins --tests

## demo: a restore command validated and submitted to a local Atlas double, end to end
demo:
	$(CARGO) run --quiet --example demo

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
