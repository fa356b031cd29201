# The two set-up commands: `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
LINT_VENV ?= .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed-$(shell cat requirements-lint.txt | cksum | cut -d' ' -f1)
DOCS_VENV ?= .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed-$(shell cat requirements-docs.txt | cksum | cut -d' ' -f1)
DEPLOY_VENV ?= .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed-$(shell cat requirements-deploy.txt | cksum | cut -d' ' -f1)
MUTATION_VENV ?= .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed-$(shell cat requirements-mutation.txt requirements.txt requirements-dev.txt \
	| cksum | cut -d' ' -f1)
HOSTS ?= 3
# Hosts whose mount fails in the demo: they hold someone else's data at the mount path, the script
# refuses it (exit 3, permanent) and the app completes their launch ABANDON. `make demo FAIL=1`.
FAIL ?= 0

.PHONY: help install test demo lint lint-templates docs deploy-files package bench clean repair deploy deploy-members uninstall hooks stop start stop-hooks start-hooks mutation

help:
	@echo 'efs-automount: make <target>. Targets that run Python create .venv/ and install into it first.'
	@echo ''
	@echo '  demo            the whole flow on an embedded local AWS (HOSTS=3 hosts, FAIL=0 of them fail)'
	@echo '  test            lint and docs, then the whole test suite'
	@echo '  bench           benchmarks; the figures end in one table, written to build/bench.json'
	@echo '  mutation        mutation testing (mutmut) of the pure decisions by their pure tests; the score per module'
	@echo '  repair          repair a deployed cluster (CLUSTER=, GROUP=, ACCOUNT=, REGION=, DRY_RUN=1, JSON=1)'
	@echo '  deploy          package and deploy the app stack (BUCKET=, STACK=, REGION=, any setting: TRUSTED_ACCOUNTS=, ...)'
	@echo '  deploy-members  the member template as a StackSet (OUS=, REGIONS=, ACCOUNTS=, CALL_AS=DELEGATED_ADMIN)'
	@echo '  uninstall       members, then the app; refused while a group of its account has the hook with ABANDON (FORCE=1)'
	@echo '  stop            emergency stop: the hooks let hosts in (CONTINUE), the app acts on nothing (repair excepted)'
	@echo '  start           the app acts again, its hooks as they were before stop'
	@echo '  hooks           the groups of this account (PROFILE=) with the app hook, in REGION, SWEEP_REGIONS, REGIONS'
	@echo '  stop-hooks      the stop for a member account: its hooks CONTINUE, its waiting hosts let in (PROFILE=)'
	@echo '  start-hooks     its hooks as they were before stop-hooks (PROFILE=)'
	@echo '  package         the CloudFormation/SAM package of the app (STAGE=prod) in build/package'
	@echo '  deploy-files    regenerate deploy/ (mount document, templates) and the document digest the checks compare with'
	@echo '  lint            ruff (with its security rules), ruff format --check, lint-templates'
	@echo '  lint-templates  cfn-lint and checkov over the packaged and the member template'
	@echo '  docs            the documentation site (mkdocs build --strict) in build/site'
	@echo '  install         create .venv/ with requirements-dev.txt'
	@echo '  clean           remove .venv/, .venv-lint/, .venv-docs/, .venv-deploy/, .venv-mutation/, build/, mutants/ and the test caches'
	@echo '  help            this list'

install: $(STAMP)

# A virtualenv ($(1)) with the requirements file $(2) installed; its stamp (the target) names the requirements'
# checksum, so a changed requirements file installs again.
define virtualenv
test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
$(1)/bin/python -m pip install --quiet --disable-pip-version-check -r $(2)
rm -f $(1)/.installed-*
touch $@
endef

$(STAMP): requirements.txt requirements-dev.txt
	$(call virtualenv,$(VENV),requirements-dev.txt)

$(LINT_STAMP): requirements-lint.txt
	$(call virtualenv,$(LINT_VENV),requirements-lint.txt)

$(MUTATION_STAMP): requirements-mutation.txt requirements.txt requirements-dev.txt
	$(call virtualenv,$(MUTATION_VENV),requirements-mutation.txt)

$(DOCS_STAMP): requirements-docs.txt
	$(call virtualenv,$(DOCS_VENV),requirements-docs.txt)

$(DEPLOY_STAMP): requirements-deploy.txt
	$(call virtualenv,$(DEPLOY_VENV),requirements-deploy.txt)

# The deploy commands' tests run the AWS CLI of make deploy against a local AWS.
test: install lint docs $(DEPLOY_STAMP)
	$(PY) -m pytest

# The documentation site, strictly: a broken link or anchor, or a page missing from mkdocs.yml's nav, fails.
# Never --quiet: it hides the warnings from the count --strict aborts on, and the build passes broken.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict

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
	rm -rf $(VENV) $(LINT_VENV) $(DOCS_VENV) $(DEPLOY_VENV) $(MUTATION_VENV) build mutants .pytest_cache .hypothesis

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
# The function: the app's stack's resource Repair (STACK=, else the one make deploy remembers in deploy.env, with its
# REGION and PROFILE, else efs-automount); FUNCTION= its name; STAGE= chalice deploy's efs-automount-$(STAGE)-repair.
# REGION= is the cluster's region (default: the app's).
# DRY_RUN=1/true/yes is a dry run; unset or 0/false/no repairs; anything else is refused (a typo never repairs).
# `python -m tools.repair` exits 0 nothing to do, 2 problems found or fixed, 1 errors; make reports any
# non-zero exit as its own error 2.
DRY_RUN_ON := 1 true yes True TRUE Yes YES
DRY_RUN_OFF := 0 false no False FALSE No NO
DRY_RUN_FLAG = $(if $(filter $(DRY_RUN_ON),$(DRY_RUN)),--dry-run,$(if $(filter-out $(DRY_RUN_OFF),$(DRY_RUN)),\
	$(error DRY_RUN=$(DRY_RUN) is neither 1/true/yes (a dry run) nor 0/false/no (repair): nothing was run)))
REPAIR_ARGS = $(strip $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(GROUP),--auto-scaling-group $(GROUP)) \
	$(if $(ACCOUNT),--account $(ACCOUNT)) $(if $(REGION),--region $(REGION)) $(DRY_RUN_FLAG) $(if $(JSON),--json) \
	$(if $(STACK),--stack $(STACK)) $(if $(FUNCTION),--function-name $(FUNCTION)) $(if $(STAGE),--stage $(STAGE)) \
	$(if $(PROFILE),--profile $(PROFILE)))
repair: install
	$(PY) -m tools.repair $(REPAIR_ARGS)

# One command to deploy, one to remove (tools/deploy.py), with your own AWS credentials:
#   make deploy BUCKET=my-artifacts [STACK=efs-automount] [REGION=eu-west-1] [TRUSTED_ACCOUNTS=... any setting]
#   make deploy-members OUS=ou-ab12-cdef3456 REGIONS=eu-west-1,eu-central-1 [ACCOUNTS=...] [CALL_AS=DELEGATED_ADMIN]
#   make uninstall [FORCE=1]        make stop / make start        make hooks / stop-hooks / start-hooks
# Only the variables given on make's command line are passed on; the others come from deploy.env, which the last
# deploy wrote (so `make deploy` alone deploys the same choices again), then from the deployed stack, then defaults.
DEPLOY_VARIABLES := STACK REGION BUCKET PREFIX PROFILE STACK_SET OUS ACCOUNTS REGIONS ROLE_REGION CALL_AS \
	MEMBERS_PROFILE APP_ROLE_ARNS HOOK_NAME TRUSTED_ACCOUNTS MEMBER_ROLE_NAME EXTERNAL_ID ON_FAILURE MOUNT_DOCUMENT \
	MOUNT_ROOTS COMMAND_TIMEOUT_SECONDS MOUNT_ATTEMPTS MAX_WAIT_SECONDS SWEEP_REGIONS SWEEP_MAX_HOSTS UPDATE_SERVICES \
	DEREGISTER_SOURCE LOG_LEVEL ORGANIZATION_ID ALARM_TOPIC_ARN FORCE
quote = '$(subst ','\'',$(1))'
DEPLOY_GIVEN = $(foreach v,$(DEPLOY_VARIABLES),$(if $(filter command line,$(origin $(v))),$(call quote,$(v)=$($(v)))))

deploy: install $(DEPLOY_STAMP)
	$(PY) -m tools.deploy deploy --aws $(DEPLOY_VENV)/bin/aws $(DEPLOY_GIVEN)

deploy-members uninstall hooks stop start stop-hooks start-hooks: install
	$(PY) -m tools.deploy $@ $(DEPLOY_GIVEN)
