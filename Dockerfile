# icap-bridge container image (first version; the deployment issue exercises it with podman).
# Build:  podman build --isolation=chroot --network=host --pull=never -t icap-bridge .
# Run:    podman run --network=host icap-bridge   (config: mount over /app/config/container.yaml)

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY protocol ./protocol
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
USER node
# 1344 ICAP; 11344 ICAPS and 9090 admin come with the deployment issue.
EXPOSE 1344 11344 9090
# An ICAP OPTIONS probe: healthy only when the server answers "ICAP/1.0 200".
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["node", "-e", "const s=require('net').connect(1344,'127.0.0.1',()=>s.write('OPTIONS icap://127.0.0.1/respmod ICAP/1.0\\r\\nHost: 127.0.0.1\\r\\nEncapsulated: null-body=0\\r\\n\\r\\n'));s.setTimeout(4000,()=>process.exit(1));s.on('data',d=>process.exit(d.toString().startsWith('ICAP/1.0 200')?0:1));s.on('error',()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/cli.js", "--config", "/app/config/container.yaml"]
