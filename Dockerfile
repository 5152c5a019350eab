# kdp image: one image for every component (kdp cni install | proxy | dns | ingress ...), on Node 24 LTS.
# Build:  docker build -t <your-registry>/kdp:0.1.0 .   (then set that image in deploy/*.yaml)
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# no install scripts: the image's own Node 24 runs everything (the `node` devDependency is for dev machines)
RUN npm ci --ignore-scripts
COPY . .
RUN node cni-plugins/build.ts
# the native addons (native/udp: the DNS server's batched UDP I/O; native/tcp: the ingress's batched TCP reads):
# a C compiler in the build stage only
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
 && node scripts/build-native.ts && node scripts/build-native.ts --check

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables nftables conntrack openssl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY ingress ./ingress
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build ./native/build
ENTRYPOINT ["/app/bin/kdp"]
