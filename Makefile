# Builds the example's static C programs into $(TARGET_OUT), as Istio's Makefile builds
# its binaries into out/<os>_<arch>/. doit-oci runs make with TARGET_OS, TARGET_ARCH,
# TARGET_OUT and TARGET_OUT_LINUX set for the platform it builds.
TARGET_OS ?= linux
TARGET_ARCH ?= amd64
TARGET_OUT ?= $(CURDIR)/out/$(TARGET_OS)_$(TARGET_ARCH)
TARGET_OUT_LINUX ?= $(CURDIR)/out/linux_$(TARGET_ARCH)

# the platform's compiler: gcc for this machine's architecture, a Debian cross compiler
# (gcc-aarch64-linux-gnu, gcc-x86-64-linux-gnu) for the other one
HOST_ARCH := $(shell uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')
CROSS_amd64 = x86_64-linux-gnu-
CROSS_arm64 = aarch64-linux-gnu-
ifeq ($(TARGET_ARCH),$(HOST_ARCH))
TARGET_CC ?= gcc
else
TARGET_CC ?= $(CROSS_$(TARGET_ARCH))gcc
endif
CFLAGS ?= -O2 -Wall -Werror
# no build paths in the binaries, so that two checkouts build the same bytes
REPRODUCIBLE = -ffile-prefix-map=$(CURDIR)=. -Wl,--build-id=none

PROGRAMS = hello whoami showconfig

.PHONY: all clean
all: $(addprefix $(TARGET_OUT)/,$(PROGRAMS)) $(TARGET_OUT)/rootfs

$(TARGET_OUT)/%: example/src/%.c
	@mkdir -p $(@D)
	$(TARGET_CC) $(CFLAGS) $(REPRODUCIBLE) -static -o $@ $<

# the base image's root directories: a /tmp that everyone may write to (mode 1777)
$(TARGET_OUT)/rootfs:
	mkdir -p $@/tmp
	chmod 1777 $@/tmp

clean:
	rm -rf $(TARGET_OUT)
