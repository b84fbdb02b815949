#!/usr/bin/env bash
# Makes the two base images the Dockerfile's build arguments name, for machines that cannot pull from a
# registry (CI here): a Debian bookworm builder with gcc and this machine's Rust toolchain, and a minimal
# Debian bookworm runtime with CA certificates (what gcr.io/distroless/cc-debian12 provides). Each is
# made only if podman does not have it yet. Users with a registry need none of this: the Dockerfile's
# defaults are the public rust:bookworm and distroless images.
#
#   deploy/container/base-images.sh            # prints the --build-arg flags to use
set -euo pipefail

BUILDER=${BUILDER_IMAGE:-localhost/dingtalk-bridge-builder:bookworm}
RUNTIME=${RUNTIME_IMAGE:-localhost/dingtalk-bridge-runtime:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/base-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$RUNTIME"; then
  echo "making $RUNTIME (debootstrap minbase bookworm + ca-certificates)" >&2
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/runtime" "$MIRROR" >"$work/runtime.log" 2>&1 \
    || { tail -20 "$work/runtime.log" >&2; exit 1; }
  rm -rf "$work/runtime/var/cache/apt/archives/"*.deb "$work/runtime/var/lib/apt/lists/"*
  tar -C "$work/runtime" -c . | podman import --change 'CMD ["/bin/bash"]' - "$RUNTIME" >/dev/null
fi

if ! podman image exists "$BUILDER"; then
  echo "making $BUILDER (debootstrap minbase bookworm + gcc + this machine's Rust toolchain)" >&2
  debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm "$work/builder" "$MIRROR" \
    >"$work/builder.log" 2>&1 || { tail -20 "$work/builder.log" >&2; exit 1; }
  rm -rf "$work/builder/var/cache/apt/archives/"*.deb "$work/builder/var/lib/apt/lists/"*
  # This machine reaches crates.io through a proxy with its own CA: the builder trusts what the host does.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/builder/usr/local/share/ca-certificates/"
    chroot "$work/builder" update-ca-certificates >/dev/null 2>&1
  fi
  sysroot=$(rustc --print sysroot)
  mkdir -p "$work/builder/usr/local/rust"
  # The toolchain without its documentation (share/doc is most of its size).
  for part in bin lib libexec etc; do
    [ -e "$sysroot/$part" ] && cp -a "$sysroot/$part" "$work/builder/usr/local/rust/"
  done
  tar -C "$work/builder" -c . | podman import \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'CMD ["/bin/bash"]' - "$BUILDER" >/dev/null
fi

echo "--build-arg BUILDER_IMAGE=$BUILDER --build-arg RUNTIME_IMAGE=$RUNTIME"
