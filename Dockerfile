# roomrec in a container. SQLite needs cgo, so the build stage has gcc.
#   docker build -t roomrec .
#   docker run -d --env-file .env -v roomrec-data:/data -p 8080:8080 roomrec
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/roomrec ./cmd/roomrec

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data roomrec
COPY --from=build /out/roomrec /usr/local/bin/roomrec
USER roomrec
ENV ROOMREC_DATA_DIR=/data ROOMREC_HTTP_ADDR=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
# SIGTERM (docker stop) finishes open files; allow it time: docker stop -t 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["roomrec"]
CMD ["serve"]
