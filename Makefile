# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
# checkov's pins conflict with moto's and sam's, so it has a venv of its own.
CHECKOV_VENV := .venv-checkov
# Pinned tools (moto, cargo-lambda + zig, sam, cfn-lint, awscli) come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_EC2_METADATA_DISABLED := true

.PHONY: venv checkov-venv system-deps demo invoke env.json test lint sam-build bench clean

venv: $(VENV)/.installed
$(VENV)/.installed: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed: tools/requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-checkov.txt
	touch $@

# Real local services from Debian (ffmpeg, MariaDB), installed when missing.
system-deps:
	scripts/system-deps.sh

demo: venv system-deps
	scripts/demo.sh

# One function, once, with one event, against local stand-ins:
#   make invoke FN=cfn-responder EVENT=events/cfn-responder/01-create-ami-lookup.json
invoke: venv system-deps
	scripts/invoke.sh "$(FN)" "$(EVENT)"

# `sam local invoke --env-vars env.json`, made from each function's
# [package.metadata.lambda.env]; tests/tests/local_runs.rs fails when it is stale.
env.json: venv
	cargo build --quiet -p suite-tests --bin lambda-env
	target/debug/lambda-env sam-env-json >$@.tmp && mv $@.tmp $@

test: venv system-deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p shared --features redrive --all-targets -- -D warnings
	mkdir -p target && cargo test --workspace 2>&1 | tee target/test-output.log
	$(MAKE) --no-print-directory lint sam-build
	@# One closing line for the whole suite, summed over every test binary.
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test-output.log

# checkov fails on any failed check or unparsable file; skips are inline in the
# template, each with its reason. No update check, no download: it stays offline.
lint: venv checkov-venv
	cfn-lint template.yaml examples/*.yaml
	CKV_PARSE_ERROR_FAIL=true CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --framework cloudformation \
		--quiet --compact --skip-download -f template.yaml examples/*.yaml

# CI machines only have the x86_64 target; users deploy arm64 by default.
sam-build: venv
	sam build --parameter-overrides Architecture=x86_64

# Deploy with samconfig.toml. The Architecture is read once (its global
# parameter_overrides, or ARCH=x86_64) and given to sam build and sam deploy
# alike: deploy gets samconfig's own overrides for it (--guided saves every
# parameter there) with PARAMS="Key=Value ..." and Architecture merged in,
# and the built template allows only that Architecture, so a --guided answer
# naming the other one is refused. ARGS go to sam deploy (ARGS=--guided);
# give parameters in PARAMS, not in ARGS.
.PHONY: deploy
deploy: venv
	arch="$(ARCH)"; arch="$${arch:-$$(python scripts/sam_deploy_parameters.py architecture)}"; \
	sam build --parameter-overrides "Architecture=$$arch"; \
	python scripts/sam_deploy_parameters.py pin .aws-sam/build/template.yaml "$$arch"; \
	python scripts/sam_deploy_parameters.py overrides "$$arch" .aws-sam/deploy-parameters.yaml $(PARAMS); \
	sam deploy --parameter-overrides file://.aws-sam/deploy-parameters.yaml $(ARGS)

# BENCHMARKS.md from scripts/BENCHMARKS.md.in and the figures measured;
# BENCH_ONLY=<function> measures that one and keeps the others' saved figures.
bench: venv system-deps
	BENCH_ONLY="$(BENCH_ONLY)" scripts/bench.sh

clean:
	cargo clean
	rm -rf .aws-sam .demo
