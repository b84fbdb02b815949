# A small non-root image with CA certificates (reqwest uses rustls with the operating system's trust
# store). Not built by CI here (no container engine); kept plain and standard.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY tests/fixtures ./tests/fixtures
RUN cargo build --release --locked --bin dingtalk-bridge

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dingtalk-bridge /usr/local/bin/dingtalk-bridge
# distroless/cc ships CA certificates and runs as uid 65532 (nonroot).
USER 65532:65532
EXPOSE 8060
ENTRYPOINT ["/usr/local/bin/dingtalk-bridge"]
CMD ["--config", "/etc/dingtalk-bridge/config/dingtalk-bridge.yaml", "--log-format", "json"]
