# The two set-up commands of the README, and their helpers.
#   make cloud-up    a whole single-host cloud (make cloud-down stops it)
#   make test        the whole test suite
# Both install what they need: Debian packages with apt-get, Python packages into .venv.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := gcc pkg-config libvirt-dev libvirt-daemon libvirt-clients systemd openssh-client openssl \
                s3cmd rclone \
                libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils dnsmasq-base iptables \
                busybox-static linux-image-amd64 cpio kmod

.PHONY: deps apt venv cloud-up cloud-down cloud-destroy test unit integration wsdl bench bench-walrus

deps: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

cloud-up: deps
	@if [ -x /usr/sbin/libvirtd ] && ! pgrep -x libvirtd >/dev/null; then \
	  mkdir -p /var/log/libvirt .cloud/run; (pgrep -x virtlogd >/dev/null || /usr/sbin/virtlogd -d) && \
	  /usr/sbin/libvirtd -d && touch .cloud/run/libvirtd.ours && echo "libvirtd: started"; fi
	$(PY) -m eucacore.devcloud up

cloud-down:
	$(PY) -m eucacore.devcloud down
	@if [ -e .cloud/run/libvirtd.ours ]; then pkill -x libvirtd; pkill -x virtlogd; rm -f .cloud/run/libvirtd.ours; echo "libvirtd: stopped"; fi

cloud-destroy:
	$(PY) -m eucacore.devcloud destroy

test: deps
	$(PY) -m pytest tests -q -p no:cacheprovider

unit: deps
	$(PY) -m pytest tests/unit -q

integration: deps
	$(PY) -m pytest tests/integration -q

wsdl: deps
	$(PY) -c 'from eucacore import soap; soap.generate_wsdls()'

bench: deps
	$(PY) bench/bench_wsgi_servers.py

bench-walrus: deps
	@dpkg -s nginx >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nginx; }
	$(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(PY) bench/bench_walrus.py $(ARGS)
