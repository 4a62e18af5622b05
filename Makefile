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
                busybox-static linux-image-amd64 cpio kmod dosfstools mtools syslinux syslinux-common

.PHONY: deps apt venv libvirtd cloud-up cloud-down cloud-destroy test unit integration wsdl bench bench-walrus \
        bench-launch bench-cc

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

# libvirtd for qemu:///system where there is no systemd to start it: Debian's qemu driver wants
# the libvirt-qemu user (libvirt-daemon-system would make it), and guests run as root so that
# they read the cloud's files. .cloud/run/libvirtd.ours marks a libvirtd that we started.
libvirtd:
	@if [ -x /usr/sbin/libvirtd ] && ! pgrep -x libvirtd >/dev/null; then \
	  getent passwd libvirt-qemu >/dev/null || useradd --system --user-group --no-create-home libvirt-qemu; \
	  [ -e /etc/libvirt/qemu.conf ] || printf 'user = "root"\ngroup = "root"\n' > /etc/libvirt/qemu.conf; \
	  mkdir -p /var/log/libvirt .cloud/run; (pgrep -x virtlogd >/dev/null || /usr/sbin/virtlogd -d) && \
	  /usr/sbin/libvirtd -d && touch .cloud/run/libvirtd.ours && echo "libvirtd: started"; fi

cloud-up: deps libvirtd
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

bench-launch: deps libvirtd
	$(PY) bench/bench_launch.py $(ARGS)

bench-cc: deps
	$(PY) bench/bench_cc_burst.py
	$(PY) bench/bench_cc_scale.py $(ARGS)
