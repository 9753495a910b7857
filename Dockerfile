# syntax=docker/dockerfile:1
#
# insuranceflow's one image: `worker` (the Temporal worker and the HTTP
# ingress, the default command), `topsim` (the TOP gateway simulator, for
# demos) and `starter` (the operator CLI, for `docker compose exec`).
#
#   docker build -t insuranceflow .
#
# No secret is read at build time or stored in the image: the TOP app
# secret, ingress tokens, payload keys and database password come from the
# environment or from files mounted at run time (see docker-compose.yml).

# The builder and the final stage share one Debian release: the binaries are
# built with cgo (mattn/go-sqlite3) and link that release's glibc.
ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Modules first, so that this layer is rebuilt only when go.mod or go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/ ./worker ./topsim ./starter

FROM debian:${DEBIAN_RELEASE}-slim
# CA roots for TLS to the TOP gateway, copied rather than installed: no
# package manager runs in this stage and nothing else is added.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ /usr/local/bin/
# A fixed non-root uid, so that secret files mounted from the host can be
# made readable to exactly this user (chown 10001).
RUN groupadd --system --gid 10001 insuranceflow \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin insuranceflow \
    && mkdir /data && chown 10001:10001 /data
USER 10001:10001
# Only a SQLite store writes locally; with PostgreSQL the container can run
# with a read-only root file system (compose does).
WORKDIR /data
# 8080: ingress HTTP API and /codec; 9090: Prometheus /metrics.
EXPOSE 8080 9090
CMD ["worker"]
