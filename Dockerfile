# Release image: Bun compiles the single outbox-mailer executable; the runtime holds only it, CA roots and a non-root user.

# Pinned to package.json "packageManager" (test/deploy asserts it): the compiler is part of the product.
FROM oven/bun:1.4.5 AS build
WORKDIR /src
# Manifests first so the dependency layer is reused while only sources change.
COPY package.json bun.lock bunfig.toml ./
# --production: the compiled entry point never reaches a devDependency (test/unit/layers.test.ts),
# and it skips embedded-postgres, whose install downloads a whole Postgres.
RUN bun install --frozen-lockfile --production
COPY tsconfig.json ./
COPY sql ./sql
COPY src ./src
RUN bun run build && ./dist/outbox-mailer --version

# A compiled Bun binary links glibc (no static/musl build exists); bookworm is the glibc (2.36) oven/bun
# builds against, and the base deploy/smoke-rootfs.sh rebuilds with debootstrap to prove it suffices.
FROM debian:bookworm-slim AS runtime
# Bun ships its own CA store; system roots still serve --use-system-ca and a Postgres sslrootcert.
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/* \
  && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin outbox
COPY --from=build /src/dist/outbox-mailer /app/outbox-mailer
# Bun's allocator (mimalloc) otherwise hands the free gaps inside its pages back to the kernel each
# time the event loop goes idle, which between two database round trips is every batch: the pages
# fault back in on the next one. Off, a drained message costs the process 15-45 % less CPU (most
# with the cheapest transport; BENCHMARKS.md, round 12) for 10-20 MB more resident memory after a
# burst; empty pages are still returned.
ENV MIMALLOC_PURGE_HOLES=0
USER 10001:10001
EXPOSE 8080
# Exec form: the binary is PID 1 and receives Fly's SIGTERM itself (a shell would swallow it).
ENTRYPOINT ["/app/outbox-mailer"]
CMD ["serve"]
