# Gateway appliance: build, run and test. `make run` and `make test` work on a
# fresh machine: they install what they need (scripts/deps.sh) first.
SHELL := /bin/bash
BUILD := build
CARGO ?= cargo
ACCEL ?= tcg
MEM ?= 256
DISK_SIZE ?= 40GiB
RELEASE := target/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# Runtime files of the image come from these Debian packages (see image/).
DEBS := libc6 libgcc-s1 e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1
# The age public key diagnostics reports are encrypted to. The default is a
# development key whose identity is in the repository (image/keys/README.md):
# set your support team's key for images you ship.
DEV_SUPPORT_RECIPIENT := image/keys/support-dev.age.pub
SUPPORT_RECIPIENT ?= $(DEV_SUPPORT_RECIPIENT)

.PHONY: fuzz all deps kernel debs binaries rootfs image images run test lint unit-test qemu-test bench-boot bench-proxy bench-cache bench-ntp bench-net fuzz-proxy fuzz-cache fuzz-sftp clean

all: image

deps:
	@scripts/deps.sh

# Cached outside the checkout by the hash of kernel-config/ and the kernel
# version (~/.cache/gateway-appliance/kernel): a rebuild only when they change.
kernel: deps
	@kernel-config/build.sh $(BUILD)/bzImage

debs: deps
	@scripts/debs.sh $(BUILD)/debs $(DEBS)

binaries:
	$(CARGO) build --release --locked -p gateway-init -p gateway-control -p gateway-proxy -p gateway-cache -p gateway-console -p gateway-agent -p gateway-sftp -p gateway-image

rootfs: debs binaries
	@[ "$(SUPPORT_RECIPIENT)" != "$(DEV_SUPPORT_RECIPIENT)" ] || echo "rootfs: diagnostics reports use the DEVELOPMENT support key (anyone with the source can read them); set SUPPORT_RECIPIENT=<file> for images you ship"
	$(RELEASE)/gateway-image rootfs --support-recipient $(SUPPORT_RECIPIENT) --init $(RELEASE)/init --program $(RELEASE)/gatewayctl --program $(RELEASE)/gateway-proxy --program $(RELEASE)/gateway-cache --program $(RELEASE)/gateway-console --program $(RELEASE)/gateway-agent --program $(RELEASE)/gateway-sftp --debs $(BUILD)/debs --version $(VERSION) --out $(BUILD)/root.ext4

image: kernel rootfs
	$(RELEASE)/gateway-image disk --kernel $(BUILD)/bzImage --root $(BUILD)/root.ext4 \
		--size $(DISK_SIZE) --out $(BUILD)/gateway.raw --cmdline-out $(BUILD)/cmdline

# The hypervisor images in dist/, named gateway-$(VERSION).*: OVA, OVF +
# stream-optimized VMDK + manifest, VMDK, VHD, qcow2; each checked by
# `gateway-image verify` as it is written (docs/images.md).
DIST := dist
images: image
	$(RELEASE)/gateway-image images --raw $(BUILD)/gateway.raw --version $(VERSION) --out-dir $(DIST)

# Boots the appliance with its serial console on this terminal (Ctrl-A X quits).
# The proxy and cache ports are forwarded to the host, and the diagnostics
# SFTP port to 2222. ACCEL=kvm where KVM works.
run: image
	@echo "Booting $(BUILD)/gateway.raw ($(ACCEL)); console below, Ctrl-A X quits QEMU."
	qemu-system-x86_64 -machine pc -accel $(ACCEL) -smp 2 -m $(MEM) \
		-drive file=$(BUILD)/gateway.raw,format=raw,if=virtio \
		-nic user,model=virtio-net-pci,hostfwd=tcp::1080-:1080,hostfwd=tcp::8080-:8080,hostfwd=tcp::2222-:22 \
		-nographic

# Formatting, clippy, and the structure docs/architecture.md describes:
# dependencies point down the layers, no import circles between files.
lint:
	python3 scripts/check-layers.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit-test:
	$(CARGO) test --locked --workspace --exclude qemu-tests

qemu-test: images
	$(CARGO) test --locked -p qemu-tests --test boot --test config --test network --test units --test disks --test console --test images --test platform --test diagnostics --test hostile

test: deps lint unit-test qemu-test

bench-boot: image
	$(CARGO) run --release --locked -p qemu-tests --bin bench-boot

# The proxy against Debian's squid in the same run (tunnel rate, latency,
# throughput, memory per idle tunnel), all on loopback; then its request
# parser under libFuzzer for BENCH_FUZZ_SECONDS (the issue asks the bench to
# run the fuzz target for a bounded time; `make fuzz-proxy` runs it alone).
BENCH_FUZZ_SECONDS ?= 30
bench-proxy: deps
	$(CARGO) build --release --locked -p gateway-proxy -p gateway-bench
	ulimit -n 20000 && $(RELEASE)/bench-proxy
	$(MAKE) fuzz-proxy FUZZ_SECONDS=$(BENCH_FUZZ_SECONDS)

# The cache against nginx (proxy_cache) and squid, same run, loopback.
bench-cache: deps
	$(CARGO) build --release --locked -p gateway-cache -p gateway-bench
	ulimit -n 20000 && $(RELEASE)/bench-cache

# First-sync offset of the appliance's NTP client and of chronyd as a client,
# both against chronyd over a veth link between namespaces (root). RUNS=n.
bench-ntp: deps
	$(CARGO) run --release --locked -p gateway-ntp --example bench-ntp

# Link up -> DHCP lease applied, against dnsmasq over a veth link (root).
bench-net: deps
	$(CARGO) test --release --locked -p gateway-net --test netns_dhcp -- --nocapture --test-threads 1 2>&1 | grep FIGURE

# The proxy's network-facing parsers under libFuzzer (nightly toolchain,
# cargo-fuzz installed on first use). FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 60
fuzz-proxy:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd services/proxy && $(CARGO) +nightly fuzz run head -- -max_total_time=$(FUZZ_SECONDS)

# The cache rules (Range, Cache-Control, Vary, dates) under libFuzzer.
fuzz-cache:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd services/cache && $(CARGO) +nightly fuzz run rules -- -max_total_time=$(FUZZ_SECONDS)

# The SFTP server's decisions on client requests: paths and download coverage.
fuzz-sftp:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd services/sftp && $(CARGO) +nightly fuzz run requests -- -max_total_time=$(FUZZ_SECONDS)

# Every fuzz target, FUZZ_SECONDS each: the services' (above) and those of
# the lib/ and init/ parsers that face the network or the hypervisor (fuzz/:
# the GPT, the configuration's text forms, NTP packets, the management API's
# HTTP and JSON, DHCP, ICMP echo replies, the OVF environment, ext4
# superblocks, PEM certificates and the cache's request targets). Prints
# each target's executions; a finding stops the run with libFuzzer's report
# and the input under <crate>/fuzz/artifacts/.
FUZZ_TARGETS = services/proxy:head services/proxy:chunked services/cache:rules \
	services/sftp:requests .:gpt .:config .:ntp .:management_api \
	.:dhcp .:icmp .:ovf .:ext4 .:pem .:target
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@set -e; for t in $(FUZZ_TARGETS); do \
		dir=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$dir $$name for $(FUZZ_SECONDS) s"; \
		(cd $$dir/fuzz && $(CARGO) +nightly fuzz run $$name -- -max_total_time=$(FUZZ_SECONDS) 2>&1 | grep -E '^Done|ERROR|SUMMARY|panicked|Test unit written' ; exit $${PIPESTATUS[0]}); \
	done

clean:
	rm -rf $(BUILD) $(DIST) target/qemu-tests
