# econe — common tasks. `make test` installs what it needs on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# molecule and ansible find their helpers (ansible-config, podman's plugin...) on PATH
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test unit sanity molecule lint bench conformance conformance-clean clean

$(BIN)/onelite: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/onelite

run: install
	$(BIN)/python -m demo.run

test: unit sanity molecule

unit: install
	$(BIN)/pytest -q

# ansible-test sanity on the collection econe.opennebula (the role's modules); tests/sanity.py says how
sanity: install
	$(BIN)/python -m tests.sanity

molecule: install
	bash molecule/run.sh

lint: install sanity
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint -q

# the end-to-end suite against an existing oned: ONE_XMLRPC, ONE_AUTH, ONE_CIPHER_AUTH (README: Conformance)
CONFORMANCE_TESTS ?= tests/test_econe_e2e.py tests/test_auth_failures.py tests/test_oned_failures.py \
	tests/test_uploads.py tests/test_http_edge.py tests/test_ansible_opennebula_ec2.py tests/test_onelite.py \
	tests/test_sts.py tests/test_keypairs_tags.py tests/test_secgroups.py tests/test_vpcs.py \
	tests/test_instance_attributes.py tests/test_ansible_ec2_workflow.py tests/test_two_econes.py \
	tests/test_login_tokens.py tests/test_listing_memo.py tests/test_x509_auth.py tests/test_addresses.py \
	tests/test_onelite_x509_users.py tests/test_ansible_x509_users.py tests/test_create_image.py \
	tests/test_volumes.py tests/test_volumes_review.py tests/test_ansible_volumes.py \
	tests/test_client_token_claims.py tests/test_attr_index.py

conformance: install
	$(BIN)/pytest -q --conformance $(CONFORMANCE_TESTS)

# lists what interrupted conformance runs left (everything named econe-conformance-*); YES=1 removes it
conformance-clean: install
	$(BIN)/python -m tests.cloud $(if $(YES),--yes)

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run collections/ansible_collections/econe/opennebula/tests/output
