# Berth: a small, non-root registry image built from source.
#
#   docker build -t berth .
#   docker run -d -p 5000:5000 -v berth-data:/var/lib/registry berth
#
# The build stage makes a fully static binary (glibc, crt-static), so the
# final image is `scratch` plus that binary and a default config.

# The Rust toolchain image (any Debian-based image with cargo and a C
# toolchain works; CI feeds a locally made one under this same name).
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# One RUN: fewer layers to copy on storage drivers without overlays.
# --target keeps crt-static away from build scripts and proc macros.
RUN set -eu; \
    target="$(rustc -vV | sed -n 's/^host: //p')"; \
    CARGO_PROFILE_RELEASE_STRIP=true \
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --locked --bin berth --target "$target"; \
    mkdir -p /out/registry; \
    cp "target/$target/release/berth" /out/berth; \
    /out/berth --version; \
    rm -rf target

FROM scratch
COPY --from=build /out/berth /berth
COPY deploy/docker/config.toml /etc/berth/config.toml
# The data directory belongs to the unprivileged user, so a fresh named
# volume (which copies the image's ownership) is writable too.
COPY --from=build --chown=65532:65532 /out/registry /var/lib/registry
ENV BERTH_CONFIG=/etc/berth/config.toml
USER 65532:65532
EXPOSE 5000
VOLUME ["/var/lib/registry"]
# No shell or curl in the image: the binary checks itself (GET /v2/ on the
# configured http.addr; 200 or 401 is healthy).
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["/berth", "healthcheck"]
# SIGTERM: in-flight requests get 30 s to finish (docker stop -t 35).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/berth"]
CMD ["serve", "/etc/berth/config.toml"]
