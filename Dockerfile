# Build a static parley binary, then ship it alone.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/parley ./cmd/parley

FROM scratch
COPY --from=build /out/parley /parley
VOLUME /data
# 8008: client API and app (publish it on the host's loopback only:
#   docker run -p 127.0.0.1:8008:8008 -p 4001:4001 -p 4001:4001/udp -v parley:/data parley)
#   Reached by a name rather than an IP address (a LAN name, a reverse proxy),
#   add it: docker run ... parley run --data /data --http 0.0.0.0:8008 --allowed-host NAME
#   On first start the node prints (docker logs) the URL that claims it,
#   http://127.0.0.1:8008/#/claim/CODE; the code is also in /data/claim-code.
# 4001: libp2p, TCP and QUIC.
EXPOSE 8008 4001/tcp 4001/udp
ENTRYPOINT ["/parley"]
CMD ["run", "--data", "/data", "--http", "0.0.0.0:8008", "--no-mdns"]
