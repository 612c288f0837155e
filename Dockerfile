# ---- build: compile TypeScript, then drop dev dependencies ----
FROM node:24-bookworm-slim AS build
WORKDIR /app

# Dependencies first, so this layer is reused until the lockfile changes.
# Scripts are off because `prepare` would run the build before the sources are
# here; no dependency needs an install script.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime: compiled output and production dependencies only ----
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app

# The pruned node_modules comes from the build stage (same base image, so any
# native code matches); reinstalling here would need the registry a second time.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY proxy.config.yaml ./

# The commented defaults also go where LACQUER_CONFIG points, so the image starts
# as is; a named volume on /etc/lacquer is seeded with this file. The cache
# directory must belong to `node` before VOLUME, or the process cannot write it.
COPY proxy.config.yaml /etc/lacquer/proxy.config.yaml
RUN mkdir -p /var/cache/lacquer && chown node:node /var/cache/lacquer
VOLUME ["/etc/lacquer", "/var/cache/lacquer"]

# Listen on all interfaces: inside a container, loopback is unreachable from outside.
# Environment variables override the file; command-line flags override both.
ENV LACQUER_LISTEN=0.0.0.0:8080 \
    LACQUER_ADMIN=0.0.0.0:8081 \
    LACQUER_CONFIG=/etc/lacquer/proxy.config.yaml \
    LACQUER_CACHE_DIR=/var/cache/lacquer

USER node
EXPOSE 8080 8081

# Slim images have no curl; node's own fetch does the check. The port is read
# from LACQUER_ADMIN so that moving the admin listener keeps the check working.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.LACQUER_ADMIN ?? '').split(':').pop() + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node runs as PID 1; the lacquer command drains on SIGTERM itself.
ENTRYPOINT ["node", "dist/proxy/cli.js"]
