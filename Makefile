# The two set-up commands: `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
LINT_VENV ?= .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed-$(shell cat requirements-lint.txt | cksum | cut -d' ' -f1)
MUTATION_VENV ?= .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed-$(shell cat requirements-mutation.txt requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOSTS ?= 3
# Hosts whose mount fails in the demo: they hold someone else's data at the mount path, the script
# refuses it (exit 3, permanent) and the app completes their launch ABANDON. `make demo FAIL=1`.
FAIL ?= 0

.PHONY: help install test demo lint lint-templates deploy-files package bench clean repair mutation

help:
	@echo 'efs-automount: make <target>. Targets that run Python create .venv/ and install into it first.'
	@echo ''
	@echo '  demo            the whole flow on an embedded local AWS (HOSTS=3 hosts, FAIL=0 of them fail)'
	@echo '  test            lint, then the whole test suite'
	@echo '  bench           benchmarks; the figures end in one table, written to build/bench.json'
	@echo '  mutation        mutation testing (mutmut) of the pure decisions by their pure tests; the score per module'
	@echo '  repair          repair a deployed cluster (CLUSTER=, GROUP=, ACCOUNT=, REGION=, DRY_RUN=1, JSON=1, STACK=)'
	@echo '  package         the CloudFormation/SAM package of the app (STAGE=prod) in build/package'
	@echo '  deploy-files    regenerate deploy/ (mount document, templates) and the document digest the checks compare with'
	@echo '  lint            ruff (with its security rules), ruff format --check, lint-templates'
	@echo '  lint-templates  cfn-lint and checkov over the packaged and the member template'
	@echo '  install         create .venv/ with requirements-dev.txt'
	@echo '  clean           remove .venv/, .venv-lint/, .venv-mutation/, build/, mutants/ and the test caches'
	@echo '  help            this list'

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

$(LINT_STAMP): requirements-lint.txt
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lint.txt
	rm -f $(LINT_VENV)/.installed-*
	touch $@

$(MUTATION_STAMP): requirements-mutation.txt requirements.txt requirements-dev.txt
	test -x $(MUTATION_VENV)/bin/python || $(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-mutation.txt
	rm -f $(MUTATION_VENV)/.installed-*
	touch $@

test: install lint
	$(PY) -m pytest

# ruff (with its S security rules), then the templates.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory lint-templates

# cfn-lint and checkov over what is deployed: the packaged template `make package` writes, and the member
# template. Findings that do not apply are skipped in the template itself, each with its reason
# (tools/build_deploy.py). --skip-download: checkov stays offline.
lint-templates: package $(LINT_STAMP)
	$(LINT_VENV)/bin/cfn-lint build/package/sam.json deploy/member-account.json
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		-f build/package/sam.json -f deploy/member-account.json

# As root with unshare, each simulated host runs host/mount-efs.sh for real in a private mount namespace.
demo: install
	$(PY) -m simulation.demo --hosts $(HOSTS) --fail $(FAIL)

# Regenerate deploy/ (and chalicelib/checks/document_digest.py) after changing host/mount-efs.sh, the tag patterns
# or .chalice/policy*.json.
deploy-files: install
	$(PY) tools/build_deploy.py

# A CloudFormation/SAM package of the app with the mount document, idempotency table and retry queue
# merged in, its modules precompiled (tools/compile_package.py: no compiling on a cold start). The queue URL given here only names the queue on_retry subscribes to; the template
# passes the real URL to the functions.
package: install
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
	RETRY_QUEUE_URL=https://sqs.$${AWS_DEFAULT_REGION:-us-east-1}.amazonaws.com/000000000000/efs-automount-retries \
		$(VENV)/bin/chalice package --stage $${STAGE:-prod} --merge-template deploy/app-resources.json build/package
	$(PY) tools/compile_package.py build/package

clean:
	rm -rf $(VENV) $(LINT_VENV) $(MUTATION_VENV) build mutants .pytest_cache .hypothesis

# Mutation testing, not part of `make test` (it takes tens of minutes): mutmut changes the pure decisions one small
# change at a time and runs their pure tests against each change; a change no test notices survives, a gap in the
# tests (or dead code). pyproject.toml names the modules and the tests. mutants/ is made afresh each time: mutmut
# would keep a mutant's old verdict after the tests changed. To look at one: .venv-mutation/bin/mutmut show NAME.
mutation: $(MUTATION_STAMP)
	rm -rf mutants
	$(MUTATION_VENV)/bin/mutmut run
	$(MUTATION_VENV)/bin/python tools/mutation_score.py

# Benchmarks (not tests): cold start, per host, burst, task definitions, package. Writes build/bench.json.
bench: install
	$(PY) -m bench.run

# Repair a cluster through the deployed function, with your own AWS credentials:
#   make repair CLUSTER=web DRY_RUN=1   (also GROUP=, ACCOUNT=, REGION=, JSON=1)
# The function: STACK= the packaged app's stack (its resource Repair), or FUNCTION= its name; else chalice deploy's
# efs-automount-$(STAGE)-repair (STAGE=prod).
# DRY_RUN=1/true/yes is a dry run; unset or 0/false/no repairs; anything else is refused (a typo never repairs).
# `python -m tools.repair` exits 0 nothing to do, 2 problems found or fixed, 1 errors; make reports any
# non-zero exit as its own error 2.
DRY_RUN_ON := 1 true yes True TRUE Yes YES
DRY_RUN_OFF := 0 false no False FALSE No NO
DRY_RUN_FLAG = $(if $(filter $(DRY_RUN_ON),$(DRY_RUN)),--dry-run,$(if $(filter-out $(DRY_RUN_OFF),$(DRY_RUN)),\
	$(error DRY_RUN=$(DRY_RUN) is neither 1/true/yes (a dry run) nor 0/false/no (repair): nothing was run)))
repair: install
	$(PY) -m tools.repair --stage $${STAGE:-prod} $(if $(STACK),--stack $(STACK)) $(if $(FUNCTION),--function-name $(FUNCTION)) \
		$(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(GROUP),--auto-scaling-group $(GROUP)) \
		$(if $(ACCOUNT),--account $(ACCOUNT)) $(if $(REGION),--region $(REGION)) \
		$(DRY_RUN_FLAG) $(if $(JSON),--json)
