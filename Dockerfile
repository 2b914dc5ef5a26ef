# Kindred app node image: docker build -t kindred .
# Build stage: better-sqlite3 compiles from source when no prebuilt binary downloads, so it
# needs python3, make and g++; the runtime stage does not.
FROM node:20-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY web ./web
RUN npm run build && npm prune --omit=dev

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /var/lib/kindred && chown node:node /var/lib/kindred
USER node
ENV KINDRED_DATA_DIR=/var/lib/kindred KINDRED_HOST=0.0.0.0
EXPOSE 8080 7070 5222 5223
# exec form: node is PID 1 and gets SIGTERM, which drains connections and hands shards over
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["start"]
