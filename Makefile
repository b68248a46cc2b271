# One-command setup, tests, demo and benchmark. Every target sets up what it needs first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
REQS := requirements.txt requirements-ros.txt requirements-test.txt requirements-nuscenes.txt requirements-nodeps.txt \
	setup.py setup.cfg

.PHONY: setup test demo bench clean system-deps waymo-env test-waymo

setup: $(STAMP)

$(STAMP): $(REQS)
	@$(MAKE) --no-print-directory system-deps
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' \
		|| { echo "error: install Python 3.11 (python3.11) and run make setup again"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-ros.txt -r requirements-test.txt \
		-r requirements-nuscenes.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)
	@echo "setup done: source $(VENV)/bin/activate"

# open3d needs Debian's libusb-1.0-0. Install it when root; otherwise say how.
system-deps:
	@if ! ldconfig -p | grep -q 'libusb-1.0.so.0'; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing libusb-1.0-0 (needed by open3d)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null; \
		else \
			echo "warning: open3d needs libusb-1.0-0: run 'sudo apt-get install libusb-1.0-0'"; \
		fi; \
	fi

test: setup
	$(BIN)/python -m pytest -q test

# Waymo's official package (tfrecord reading) pins numpy/TensorFlow versions that clash with ours: its own venv.
WAYMO_VENV := .venv-waymo
WAYMO_STAMP := $(WAYMO_VENV)/.setup-done

waymo-env: $(WAYMO_STAMP)

$(WAYMO_STAMP): requirements-waymo.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' \
		|| { echo "error: install Python 3.11 (python3.11) and run make waymo-env again"; exit 1; }
	@test -x $(WAYMO_VENV)/bin/python || $(PYTHON) -m venv $(WAYMO_VENV)
	$(WAYMO_VENV)/bin/python -m pip install -q --upgrade pip
	$(WAYMO_VENV)/bin/python -m pip install -q -r requirements-waymo.txt
	@touch $(WAYMO_STAMP)
	@echo "waymo-env done: sparsekd-data waymo-convert finds $(WAYMO_VENV) by itself"

# The tfrecord conversion test, with the Waymo venv required (it fails rather than skips without it).
test-waymo: setup waymo-env
	SPARSEKD_WAYMO_PYTHON=$(CURDIR)/$(WAYMO_VENV)/bin/python $(BIN)/python -m pytest -q test/test_waymo_tfrecord.py

demo: setup
	$(BIN)/python -m sparsekd_ros.demo

bench: setup
	$(BIN)/sparsekd-bench

clean:
	rm -rf $(VENV) $(WAYMO_VENV) build install log *.egg-info demo_out
