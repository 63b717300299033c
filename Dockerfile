# The ubihooks server as a static binary on distroless, running as the non-root user 65532.
#
#   docker build -t ubihooks .
#   docker run -d --stop-timeout 30 -p 8080:8080 -v ubihooks:/var/lib/ubihooks ubihooks
#
# The database (SQLite, and its key file ubihooks.db.key beside it) lives in the volume
# /var/lib/ubihooks. Every flag of serve also reads an environment variable UBIHOOKS_<FLAG>
# (docker run -e UBIHOOKS_ALLOW_NETWORKS=10.0.0.0/8 …); see docs/operations.md#packaging.
# There is no HEALTHCHECK (the image has no shell and no curl): orchestrators probe
# GET /livez (liveness) and GET /readyz (readiness) on port 8080. SIGTERM shuts down
# gracefully within UBIHOOKS_SHUTDOWN_TIMEOUT (15s): give docker stop more than that.

# GO_VERSION is go.mod's go line: golang images build with GOTOOLCHAIN=local, so an
# older Go would refuse the module.
ARG GO_VERSION=1.26.8

# The build runs on the builder's platform and cross-compiles for the target one
# (docker buildx build --platform linux/amd64,linux/arm64 …), without emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/ubihooks ./cmd/ubihooks
# The state directory, copied below with the owner of the non-root user: a new named
# volume takes the owner of the directory it is mounted on.
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ubihooks /usr/local/bin/ubihooks
COPY --from=build --chown=65532:65532 /out/state /var/lib/ubihooks
USER 65532:65532
WORKDIR /var/lib/ubihooks
VOLUME /var/lib/ubihooks
ENV UBIHOOKS_DATABASE=/var/lib/ubihooks/ubihooks.db \
    UBIHOOKS_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ubihooks"]
CMD ["serve"]
