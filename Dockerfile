# Photon as a container image: a release build in a Rust image, run from a slim Debian.
# Built with the `heif` feature, so HEIC photos (an iPhone's default) are decoded through
# Debian's libheif.
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libheif-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p photon --features heif

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libheif1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/photon --create-home photon
COPY --from=build /src/target/release/photon /usr/local/bin/photon
USER photon
WORKDIR /var/lib/photon
ENV PHOTON_BIND=0.0.0.0:8080 PHOTON_DATA_DIR=/var/lib/photon
EXPOSE 8080
ENTRYPOINT ["photon"]
CMD ["serve"]
