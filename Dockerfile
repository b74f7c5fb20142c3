# Builds the single kpibridge binary into a small image for docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/kpibridge ./cmd/kpibridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kpibridge /usr/local/bin/kpibridge
ENTRYPOINT ["/usr/local/bin/kpibridge"]
