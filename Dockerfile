# syntax=docker/dockerfile:1
# Multi-stage build of the operator image: build with the toolchain pinned in
# rust-toolchain.toml (1.95.0), --locked, release; run on distroless "cc" (glibc, libgcc, CA
# certificates, no shell, no package manager) as a numeric non-root user.
#
#   docker build -t gitlab-deployment-operator:0.1.0 .
#
# tests/deploy_manifests.rs checks that USER is numeric and non-root and that BINARY's path is
# the Deployment's command.

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# rust-toolchain.toml names the same 1.95.0 this image carries; rustup would otherwise fetch it.
COPY . .
# Cache the registry and target/ between builds; copy the binary out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gitlab-deployment-operator --bin gitlab-deployment-operator \
 && install -D -m 0755 target/release/gitlab-deployment-operator /out/gitlab-deployment-operator

# bookworm matches the build stage's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gitlab-deployment-operator /usr/local/bin/gitlab-deployment-operator
# distroless "nonroot" (65532:65532); the Deployment's runAsUser/runAsGroup say the same.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gitlab-deployment-operator"]
CMD ["run"]
