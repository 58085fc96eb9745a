# qunguard image: build with the same Debian packages CI uses, run on a slim base.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libhyperscan-dev pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin qunguard

FROM debian:bookworm-slim
# libhyperscan5 is the runtime half of libhyperscan-dev (x86-64 only, like Hyperscan itself).
RUN apt-get update && apt-get install -y --no-install-recommends libhyperscan5 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/qunguard /usr/local/bin/qunguard
COPY config /etc/qunguard
# Compiled rule databases are cached here; mount a volume to keep them across restarts.
ENV QUNGUARD_CACHE_DIR=/var/cache/qunguard
EXPOSE 9898
ENTRYPOINT ["qunguard"]
CMD ["run", "--config", "/etc/qunguard/qunguard.toml"]
