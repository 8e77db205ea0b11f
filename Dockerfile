# syntax=docker/dockerfile:1
# Tessera runner image. Multi-arch: `docker buildx build --platform linux/arm64,linux/amd64 -t <repo>:<tag> --push .`
# Every dependency is plain JavaScript or WebAssembly, but each platform still installs its own node_modules so
# that a native addon added later cannot end up on the wrong architecture.
ARG NODE_IMAGE=node:24-slim

# deps: production dependencies only, from the lock file, no install scripts.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/ packages/
COPY runtime/package.json runtime/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

# runner: sources run directly by Node's type stripping (no build step), as an unprivileged user.
FROM ${NODE_IMAGE} AS runner
ENV NODE_ENV=production \
    TESSERA_HOST=0.0.0.0 \
    TESSERA_PORT=7400 \
    TESSERA_RUNNER_PORT=34431 \
    TESSERA_DATA=/data
# Aurora's certificates chain to the Amazon RDS CAs, which are not in Node's bundled store; DATABASE_URL asks for
# sslmode=verify-full.
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/rds-global-bundle.pem
WORKDIR /app
COPY --from=deps /app/node_modules node_modules/
COPY package.json ./
COPY packages/ packages/
COPY runtime/ runtime/
COPY actors/ actors/
COPY app/ app/
COPY docker/ecs-metadata.ts docker/
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 7400 34431 34432
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.TESSERA_PORT + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# On ECS the preload fills TESSERA_RUNNER_HOST and TESSERA_ZONE from the task metadata endpoint.
CMD ["node", "--import", "./docker/ecs-metadata.ts", "app/runner.ts"]
