# Estuary runs its TypeScript sources on Node 24 directly; no build stage is needed.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only; the image's own Node 24 replaces the pinned `node` devDependency.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY config ./config
# Never root: the `node` user (uid 1000) owns nothing but what it writes under /var/log/estuary
# and the compile cache.
ENV NODE_COMPILE_CACHE=/app/.compile-cache
COPY scripts/warm-compile-cache.mjs ./scripts/
RUN mkdir -p /var/log/estuary /app/.compile-cache && chown node:node /var/log/estuary /app/.compile-cache
USER node
# Every module stripped and compiled ahead, so starts skip the type stripper (~20 MB resident).
# The cache is kept per user id, so it is filled as the user that runs; read-only at run time
# (readOnlyRootFilesystem) is fine.
RUN node scripts/warm-compile-cache.mjs
EXPOSE 24224 9880 24231
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/bin/estuary.js"]
CMD ["run", "-c", "/app/config/estuary.yaml"]
