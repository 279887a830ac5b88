# api-guard container image: a release build without the development issuer, running as an
# unprivileged user on 0.0.0.0:8080. Configure it with AUTH_ISSUER (or OKTA_DOMAIN) and
# AUTH_AUDIENCE; see .env.example and README "Deploy".
#
#   docker build -t api-guard .
#   docker run --rm -p 8080:8080 -e AUTH_ISSUER=https://dev-123456.okta.com/oauth2/default api-guard

# bookworm, as the runtime below: the binary links the same glibc it runs with.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# aws-lc-sys builds its C sources with the gcc that rust:slim ships.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY src ./src
# Cargo.toml names the test and bench targets; cargo reads their paths even for a build.
COPY tests ./tests
COPY benches ./benches
# --no-default-features: the development issuer (`--dev`) is not compiled in at all.
RUN cargo build --locked --release --no-default-features --bin api-guard \
    && cp target/release/api-guard /api-guard

# Why distroless/cc-debian12:
# - the binary (Rust's default gnu target) links only glibc and libgcc_s, both of which
#   distroless/cc provides; aws-lc is compiled in, OpenSSL is not used.
#   distroless/static would need a fully static (musl) build instead.
# - no CA bundle is needed: TLS roots for the issuer are compiled in (webpki-roots).
# - no shell, no package manager: nothing for an intruder to run. It also means no
#   HEALTHCHECK (it would run inside the container, with no curl and no sh): probe
#   GET /health/ready (routing) and GET /health/live (restarts) from the orchestrator or
#   the load balancer instead.
# - the :nonroot tag ships the user 65532; USER is numeric so Kubernetes can verify
#   runAsNonRoot without a passwd lookup.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /api-guard /usr/local/bin/api-guard
ENV BIND_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
ENV METRICS_ADDR=0.0.0.0:9090
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/api-guard"]
