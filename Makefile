# secops: `make run` (demo) and `make test` (the whole suite, as CI runs it).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := restic rclone gnupg openssh-server openssh-client python3-venv ca-certificates systemd shellcheck \
	libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils \
	libreoffice-writer-nogui libreoffice-calc-nogui python3-uno imagemagick git zip unzip \
	samba smbclient libfaketime nftables rsyslog softhsm2 libnss3-tools
# the office software the detection tests run: LibreOffice (UNO), ImageMagick, git, zip,
# and Samba (smbd: the clerks' PCs reach the election folder over its share); libfaketime
# (a clock step under the real daemon, tests/faults/test_clock_step.py); nftables (the block
# action) and rsyslog (sshd writing auth.log: tests/integration/test_login_watch.py);
# SoftHSM2 (the token of the PAdES tests) and NSS's certutil (pdfsig's trust store):
# tests/integration/test_pades.py
TOOLS  := restic rclone gpg /usr/sbin/sshd ssh systemd-analyze shellcheck pdftoppm \
	soffice mogrify git zip unzip /usr/sbin/smbd /usr/sbin/nft /usr/sbin/rsyslogd \
	softhsm2-util certutil pdfsig
# reports: WeasyPrint needs Pango; the PDF's Vietnamese needs a font with its glyphs
LIBS   := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

.PHONY: all deps bench-deps venv run test lint typecheck unit bench clean install

all: test

deps: ## system programs: through apt when root, else says what is missing
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	/usr/bin/python3 -c 'import uno' >/dev/null 2>&1 || missing="$$missing python3-uno"; \
	for f in $(LIBS); do [ -e $$f ] || missing="$$missing $$f"; done; \
	ldconfig -p | grep -q 'libpangoft2-1.0.so.0' || missing="$$missing libpangoft2"; \
	ldconfig -p | grep -q 'libharfbuzz-subset.so.0' || missing="$$missing libharfbuzz-subset"; \
	ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing="$$missing libfaketime"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	  else echo "missing:$$missing; install with: sudo apt-get install $(APT_PACKAGES)"; exit 3; fi; \
	fi

bench-deps: ## programs only the benchmarks use: AIDE (bench/fim_bench.py), fail2ban (bench/login_bench.py), as deps does
	@for p in aide:aide fail2ban-regex:fail2ban; do t=$${p%%:*}; pkg=$${p##*:}; \
	  if ! command -v $$t >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "installing: $$pkg"; \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$pkg; \
	    else echo "missing: $$pkg; install with: sudo apt-get install $$pkg"; exit 3; fi; \
	  fi; \
	done

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: deps venv ## the demo: sample election folder, local + append-only off-site target
	$(BIN)/secops --config configs/demo.toml demo --then-run

lint: venv
	$(BIN)/ruff check secops tests bench
	shellcheck scripts/install.sh

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit -q

test: deps venv lint typecheck
	$(BIN)/pytest -q

bench: deps bench-deps venv
	$(BIN)/python bench/backup_bench.py
	$(BIN)/python bench/fim_bench.py
	$(BIN)/python bench/audit_bench.py
	$(BIN)/python bench/playbook_bench.py
	$(BIN)/python bench/login_bench.py
	$(BIN)/python bench/sign_bench.py

install: ## install on this server as root: /opt/secops, /usr/local/bin/secops, the unit, /etc/secops
	scripts/install.sh

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache
