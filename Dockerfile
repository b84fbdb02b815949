# The image users build and the one CI builds and runs (tests/container.rs): a release build, then a small
# non-root runtime with CA certificates (reqwest uses rustls with the operating system's trust store).
#
#   podman build -t dingtalk-bridge:0.1.0 .          # or docker build
#
# The base images are build arguments with the public defaults. Where no registry is reachable (CI here),
# deploy/container/base-images.sh makes equivalents locally and prints the --build-arg flags.
ARG BUILDER_IMAGE=docker.io/library/rust:1.89-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY templates ./templates
COPY tests/fixtures ./tests/fixtures
# Cache mounts keep the crate downloads and the build directory between builds (BuildKit and buildah);
# the binary is copied out of the cached directory into the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dingtalk-bridge \
    && cp target/release/dingtalk-bridge /dingtalk-bridge

FROM ${RUNTIME_IMAGE}
COPY --from=build /dingtalk-bridge /usr/local/bin/dingtalk-bridge
# distroless/cc ships CA certificates and runs as uid 65532 (nonroot); so does the StatefulSet.
USER 65532:65532
# glibc malloc tuned for bursts (examples/memattack, 32 concurrent 4 MB webhooks: peak 71 -> 51 MiB, five
# seconds later 46 -> 29 MiB): two arenas instead of eight per core, and a fixed 128 KiB threshold above
# which blocks are mapped and unmapped on their own (glibc otherwise raises it after the first large free,
# and keeps the memory of later bursts in its heap).
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
EXPOSE 8060
ENTRYPOINT ["/usr/local/bin/dingtalk-bridge"]
CMD ["--config", "/etc/dingtalk-bridge/config/dingtalk-bridge.yaml", "--log-format", "json"]
