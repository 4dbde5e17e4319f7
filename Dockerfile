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
# Every module stripped and compiled ahead: starts skip the type stripper (~20 MB resident).
# Read-only at run time (the node user cannot write it), which the cache tolerates.
ENV NODE_COMPILE_CACHE=/app/.compile-cache
COPY scripts/warm-compile-cache.mjs ./scripts/
RUN node scripts/warm-compile-cache.mjs
# Never root: the `node` user (uid 1000) owns nothing but what it writes under /var/log/estuary.
RUN mkdir -p /var/log/estuary && chown node:node /var/log/estuary
USER node
EXPOSE 24224 9880 24231
ENTRYPOINT ["node", "/app/bin/estuary.js"]
CMD ["run", "-c", "/app/config/estuary.yaml"]
