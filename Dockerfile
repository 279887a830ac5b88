# api-guard container image: a release build without the development issuer, running as an
# unprivileged user on 0.0.0.0:8080. Configure it with AUTH_ISSUER (or OKTA_DOMAIN) and
# AUTH_AUDIENCE; see .env.example.
#
#   docker build -t api-guard .
#   docker run --rm -p 8080:8080 -e AUTH_ISSUER=https://dev-123456.okta.com/oauth2/default api-guard

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# aws-lc-sys builds its C sources with the gcc that rust:slim ships.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY src ./src
COPY tests ./tests
RUN cargo build --locked --release --no-default-features \
    && cp target/release/api-guard /api-guard

# distroless/cc: glibc and libgcc only, no shell, no package manager; TLS roots are compiled in
# (webpki-roots), so no CA bundle is needed. The :nonroot tag runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /api-guard /usr/local/bin/api-guard
ENV BIND_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/api-guard"]
