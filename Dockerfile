# icap-bridge container image: multi-stage, production dependencies only, runs as `node` (uid 1000).
#
# Build (see ../shared/tools/podman-here.md on machines without a Docker engine):
#   podman build --format docker --isolation=chroot --network=host --pull=never -t icap-bridge .
#   (--format docker keeps the HEALTHCHECK; the OCI image format has no field for it.)
#
# Run:
#   podman run -d --name icap-bridge --network=host icap-bridge
#   podman run -d --name icap-bridge -p 1344:1344 -v /srv/icap-bridge:/etc/icap-bridge:ro icap-bridge
#
# Configuration: /etc/icap-bridge/icap-bridge.yaml (the image ships config/container.yaml there:
# the defaults, listening on 0.0.0.0:1344). Mount a directory over /etc/icap-bridge to replace
# it; relative paths in the file (block page, hash lists) resolve against that directory. The
# spool (bodies over spool.memory_bytes) goes to /tmp unless spool.directory says otherwise.
# If the file moves the ICAP port away from 1344, override the health check to match:
#   --health-cmd 'node dist/src/cli.js probe icap://127.0.0.1:PORT/respmod'
#
# Stopping: SIGTERM (podman/docker stop) stops accepting, lets in-flight transactions finish
# (10 s grace) and exits 0; give `stop -t` at least that much.

# Production dependencies alone, in their own layer: cached until package*.json change.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# The compiler and its types, then the sources (this layer is the one rebuilt on a code change).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY protocol ./protocol
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the server's user: a compromised process cannot rewrite its code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
COPY config/container.yaml /etc/icap-bridge/icap-bridge.yaml
USER node
# 1344 ICAP; 11344 ICAPS and 9090 admin (health, metrics) as the TLS and metrics issues add them.
EXPOSE 1344 11344 9090
# An ICAP OPTIONS request; healthy only on "ICAP/1.0 200" (src/cli/probe.ts).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/src/cli.js", "probe", "--timeout", "4000", "icap://127.0.0.1:1344/respmod"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/cli.js", "--config", "/etc/icap-bridge/icap-bridge.yaml"]
