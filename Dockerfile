# api-guard container image: a release build without the development issuer, running as an
# unprivileged user on 0.0.0.0:8080. Configure it with AUTH_ISSUER (or OKTA_DOMAIN) and
# AUTH_AUDIENCE; see .env.example and README "Deploy".
#
#   docker build -t api-guard --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm -p 8080:8080 -e AUTH_ISSUER=https://dev-123456.okta.com/oauth2/default api-guard
#
# Needs BuildKit (Docker 23 and later build with it by default) for the cache mounts below.
#
# Base images: TODO(pin) pin both FROM lines by digest. The digests could not be looked up
# from where this file was written (no registry access), and none is written here unverified.
# To pin or bump one:
#   docker buildx imagetools inspect rust:1-slim-bookworm --format '{{json .Manifest.Digest}}'
# and write `FROM rust:1-slim-bookworm@sha256:<that digest> AS build`, keeping the tag for
# people; likewise for gcr.io/distroless/cc-debian12:nonroot. Bump by running the same command
# again (monthly, or with Renovate/Dependabot's docker manager, which update digests in place).

# bookworm, as the runtime below: the binary links the same glibc it runs with.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# aws-lc-sys builds its C sources with the gcc that rust:slim ships.
COPY Cargo.toml Cargo.lock clippy.toml build.rs ./
COPY src ./src
# The library the service is built on (a workspace member: its manifest, sources, examples,
# tests and benches, since cargo reads every target's path even for a build).
COPY crates ./crates
# Cargo.toml names the black-box test target; cargo reads its path even for a build.
COPY tests ./tests
COPY benches ./benches
# The DPoP client example (`cargo run --example dpop-client`): cargo reads every target's path.
COPY examples ./examples
# --no-default-features: the development issuer (`--dev`) is not compiled in at all.
# FEATURES=dev-issuer builds the try-out image of deploy/compose.dev.yaml instead (never
# deploy that one).
ARG FEATURES=""
# The commit for `api_guard_build_info` (build.rs reads API_GUARD_COMMIT; there is no .git).
ARG REVISION=unknown
# Cache mounts: the registry and the target directory outlive the layer, so after a source
# edit only the changed crates compile again; the dependencies stay built. The binary is
# copied out of the mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    API_GUARD_COMMIT=$REVISION \
    cargo build --locked --release --no-default-features --features "$FEATURES" --bin api-guard \
    && cp target/release/api-guard /api-guard

# Why distroless/cc-debian12:
# - the binary (Rust's default gnu target) links only glibc and libgcc_s, both of which
#   distroless/cc provides; aws-lc is compiled in, OpenSSL is not used.
#   distroless/static would need a fully static (musl) build instead.
# - no CA bundle is needed: TLS roots for the issuer are compiled in (webpki-roots).
# - no shell, no package manager: nothing for an intruder to run. The HEALTHCHECK below
#   runs the binary itself (`api-guard healthcheck`: GET /health/ready over loopback, exec
#   form, no shell needed). Kubernetes ignores it and probes over HTTP (deploy/kubernetes).
# - the :nonroot tag ships the user 65532; USER is numeric so Kubernetes can verify
#   runAsNonRoot without a passwd lookup.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
# OCI annotations (opencontainers image-spec, annotations.md), read by registries and scanners.
LABEL org.opencontainers.image.title="api-guard" \
      org.opencontainers.image.description="Protects HTTP APIs with OAuth 2.0 access tokens from Okta or any OpenID Connect issuer" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /api-guard /usr/local/bin/api-guard
ENV BIND_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
ENV METRICS_ADDR=0.0.0.0:9090
EXPOSE 8080
USER 65532:65532
# Healthy once the issuer's keys are loaded; unhealthy while draining after SIGTERM.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/api-guard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/api-guard"]
