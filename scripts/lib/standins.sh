# Local TEST STAND-INS for the official base images that docker/Dockerfile,
# docker/compose.yaml and docker/compose.test.yaml name, for machines that reach no
# image registry. Sourced by scripts/compose-test, not run.
#
# Each stand-in is built from Debian's packages (mmdebstrap, then `docker import`), is
# labelled org.customer-portal.test-standin, and is tagged with the name the files use,
# so the files build and run unmodified. An image that already has that name and no such
# label is the real one (pulled earlier): it is used as it is. A stand-in is rebuilt
# only when this recipe changes (the label carries its hash).
#
#   rust:<version>-slim-bookworm     bookworm minbase + gcc, libc6-dev, ca-certificates,
#                                    and the machine's own Rust toolchain (rustc/cargo of
#                                    exactly <version>, checked); its CA bundle is the
#                                    machine's, so cargo reaches crates.io through this
#                                    network's TLS-intercepting egress
#   gcr.io/distroless/cc-debian12:nonroot
#                                    no shell, no package manager: only libc6, libgcc-s1,
#                                    libgomp1, libstdc++6, libssl3, the CA bundle, tzdata,
#                                    netbase, os-release, and the users root, nonroot
#                                    (65532) and nobody; runs as 65532
#   postgres:<major.minor>-trixie    trixie minbase + postgresql-<major>, the official
#                                    image's layout (PGDATA, uid 999, STOPSIGNAL SIGINT)
#                                    and an entrypoint honouring POSTGRES_USER,
#                                    POSTGRES_PASSWORD and POSTGRES_DB
#   python:3.11-slim-bookworm        bookworm minbase + python3 (runs the fake Stripe); the
#                                    same tree as the Rust one's, so gcc is there too

STANDIN_LABEL=org.customer-portal.test-standin
# Bump when a recipe below changes what an image holds: cached stand-ins are rebuilt.
STANDIN_RECIPE_VERSION=2
STANDIN_WORK=""

standin_recipe_hash() {
  { echo "$STANDIN_RECIPE_VERSION"; cat "$ROOT/docker/standins/postgres-entrypoint.sh"
    rustc -vV; } | sha256sum | cut -c1-16
}

# standin_state IMAGE: "stand-in" (current recipe), "stale", "real" or "missing".
standin_state() {
  local recipe
  if ! recipe=$(docker image inspect --format "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$1" 2>/dev/null); then
    echo missing
  elif [[ -z "$recipe" || "$recipe" == "<no value>" ]]; then
    echo real
  elif [[ "$recipe" == "$STANDIN_RECIPE" ]]; then
    echo stand-in
  else
    echo stale
  fi
}

# standin_finish ROOTFS_IMAGE NAME DESCRIPTION DOCKERFILE_LINES...: adds the image
# configuration (which `docker import` cannot all set: STOPSIGNAL) and the label.
standin_finish() {
  local rootfs=$1 name=$2 description=$3
  shift 3
  {
    echo "FROM $rootfs"
    printf '%s\n' "$@"
    echo "LABEL $STANDIN_LABEL=\"$STANDIN_RECIPE\" org.customer-portal.test-standin.description=\"$description\""
  } >"$STANDIN_WORK/Dockerfile"
  # The engine's classic builder (the only one that needs no buildx plugin from the CLI);
  # its deprecation notice is shown only when the build fails.
  if ! DOCKER_BUILDKIT=0 docker build -q -t "$name" - <"$STANDIN_WORK/Dockerfile" >"$STANDIN_WORK/build.log" 2>&1; then
    cat "$STANDIN_WORK/build.log" >&2
    return 1
  fi
  docker rmi "$rootfs" >/dev/null
}

standin_mmdebstrap() { # SUITE TARGET PACKAGES [options...]
  local suite=$1 target=$2 packages=$3
  shift 3
  mmdebstrap --quiet --variant=minbase --include="$packages" \
    --aptopt='Acquire::Retries "3"' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$@" "$suite" "$target"
}

standin_bookworm_rootfs() {
  [[ -d "$STANDIN_WORK/bookworm" ]] && return
  standin_mmdebstrap bookworm "$STANDIN_WORK/bookworm" \
    ca-certificates,gcc,libc6-dev,python3,tzdata,netbase,libgomp1,libssl3
}

standin_python() { # NAME
  standin_bookworm_rootfs
  tar -C "$STANDIN_WORK/bookworm" -c . | docker import - standin-rootfs/python >/dev/null
  standin_finish standin-rootfs/python "$1" "Debian bookworm minbase + gcc, libc6-dev and python3 $(chroot "$STANDIN_WORK/bookworm" python3 -c 'import platform; print(platform.python_version())')" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    'CMD ["python3"]'
}

standin_distroless() { # NAME
  standin_bookworm_rootfs
  local src=$STANDIN_WORK/bookworm dst=$STANDIN_WORK/distroless
  rm -rf "$dst" && mkdir -p "$dst"/usr/{bin,lib,lib64,sbin} "$dst"/{etc,tmp,root,var/lib}
  ln -s usr/lib "$dst/lib" && ln -s usr/lib64 "$dst/lib64"
  ln -s usr/bin "$dst/bin" && ln -s usr/sbin "$dst/sbin"
  # The packages' own files, minus directories, with /lib... paths as merged /usr ones.
  chroot "$src" dpkg-query -L libc6 libgcc-s1 libgomp1 libstdc++6 libssl3 tzdata netbase base-files \
    | sed -E 's#^/(lib|lib64|bin|sbin)/#/usr/\1/#' | sort -u | while read -r path; do
      if [[ -L "$src$path" || (-e "$src$path" && ! -d "$src$path") ]]; then echo ".$path"; fi
    done >"$STANDIN_WORK/distroless.list"
  # base-files' maintainer scripts and shells are not files of a distroless image.
  grep -v -E '^\./(usr/s?bin|etc/update-motd\.d)/' "$STANDIN_WORK/distroless.list" >"$STANDIN_WORK/distroless.keep"
  tar -C "$src" --no-recursion -cf - -T "$STANDIN_WORK/distroless.keep" \
    | tar -C "$dst" --keep-directory-symlink -xf -
  mkdir -p "$dst/etc/ssl/certs"
  cp "$src/etc/ssl/certs/ca-certificates.crt" "$dst/etc/ssl/certs/"
  cp -a "$src/etc/localtime" "$src/etc/timezone" "$dst/etc/" 2>/dev/null || true
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dst/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$dst/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$dst/etc/nsswitch.conf"
  mkdir -p "$dst/home/nonroot" && chown 65532:65532 "$dst/home/nonroot" && chmod 700 "$dst/home/nonroot" "$dst/root"
  chmod 1777 "$dst/tmp"
  if compgen -G "$dst/usr/bin/*" >/dev/null || [[ -e "$dst/usr/bin/sh" || -e "$dst/usr/sbin/sh" ]]; then
    echo "error: the distroless stand-in has programs in /usr/bin or /usr/sbin" >&2
    return 1
  fi
  tar -C "$dst" --numeric-owner -c . | docker import - standin-rootfs/distroless >/dev/null
  standin_finish standin-rootfs/distroless "$1" "distroless-like: Debian bookworm libc6, libgcc-s1, libgomp1, libstdc++6, libssl3, CA bundle, tzdata; no shell; uid 65532" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    'USER 65532:65532' 'WORKDIR /home/nonroot'
}

standin_rust() { # NAME VERSION
  local name=$1 version=$2 host_version toolchain sysroot
  host_version=$(rustc -V | awk '{print $2}')
  if [[ "$host_version" != "$version" && "$host_version" != "$version".* ]]; then
    echo "error: docker/Dockerfile builds with $name, but this machine's Rust is $host_version;" >&2
    echo "       the stand-in is made of this machine's toolchain: update the Dockerfile's pin." >&2
    return 1
  fi
  standin_bookworm_rootfs
  sysroot=$(rustc --print sysroot)
  toolchain=/usr/local/rustup/toolchains/$host_version-x86_64-unknown-linux-gnu
  # A hard-linked copy of the bookworm tree, so the other stand-ins stay without them.
  local root=$STANDIN_WORK/rust
  rm -rf "$root" && cp -al "$STANDIN_WORK/bookworm" "$root"
  mkdir -p "$root$toolchain" "$root/usr/local/cargo/bin"
  # The toolchain without its documentation (share/) or rust-analyzer's server (libexec/).
  cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/etc" "$root$toolchain/" 2>/dev/null \
    || cp -a "$sysroot/bin" "$sysroot/lib" "$root$toolchain/"
  for tool in "$root$toolchain"/bin/*; do
    ln -sf "$toolchain/bin/${tool##*/}" "$root/usr/local/cargo/bin/${tool##*/}"
  done
  # This network reaches crates.io only through a TLS-intercepting egress: the machine's
  # own CA bundle (the public CAs plus that egress's) replaces Debian's in the stand-in.
  rm -f "$root/etc/ssl/certs/ca-certificates.crt"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  tar -C "$root" -c . | docker import - standin-rootfs/rust >/dev/null
  standin_finish standin-rootfs/rust "$name" "Debian bookworm minbase + gcc, libc6-dev, python3 and this machine's Rust $host_version and CA bundle" \
    'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin RUST_VERSION='"$host_version" \
    'CMD ["bash"]'
}

standin_postgres() { # NAME MAJOR
  local name=$1 major=$2 root=$STANDIN_WORK/trixie version
  standin_mmdebstrap trixie "$root" "postgresql-$major" \
    --setup-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/standin.conf"' \
    --essential-hook='echo "postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/bash" >>"$1/etc/passwd" && echo "postgres:x:999:" >>"$1/etc/group"'
  version=$(chroot "$root" dpkg-query -W -f '${Version}' "postgresql-$major")
  install -m 0755 "$ROOT/docker/standins/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  # Inside the chroot: /var/run is a symlink to /run, which outside it is the machine's.
  chroot "$root" sh -c 'mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /run/postgresql &&
    chown -R postgres:postgres /var/lib/postgresql /run/postgresql &&
    chmod 3777 /run/postgresql && chmod 1777 /var/lib/postgresql/data'
  rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
  tar -C "$root" --numeric-owner -c . | docker import - standin-rootfs/postgres >/dev/null
  standin_finish standin-rootfs/postgres "$name" "Debian trixie minbase + postgresql-$major $version" \
    "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PGDATA=/var/lib/postgresql/data LANG=C.UTF-8 PG_MAJOR=$major" \
    'VOLUME /var/lib/postgresql/data' 'ENTRYPOINT ["docker-entrypoint.sh"]' 'STOPSIGNAL SIGINT' \
    'EXPOSE 5432' 'CMD ["postgres"]'
}

# standins_ensure IMAGE...: every named image exists afterwards (real or stand-in).
standins_ensure() {
  local image state built=()
  STANDIN_RECIPE=$(standin_recipe_hash)
  for image in "$@"; do
    state=$(standin_state "$image")
    case "$state" in
      real) echo "  $image: the real image is here; using it"; continue ;;
      stand-in) echo "  $image: test stand-in, cached ($(standin_size "$image"))"; continue ;;
    esac
    if [[ -z "$STANDIN_WORK" ]]; then
      STANDIN_WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/customer-portal-standins.XXXXXX")
    fi
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    case "$image" in
      rust:*-slim-bookworm) local v=${image#rust:}; standin_rust "$image" "${v%-slim-bookworm}" ;;
      gcr.io/distroless/cc-debian12:nonroot) standin_distroless "$image" ;;
      postgres:*-trixie) local v=${image#postgres:}; standin_postgres "$image" "${v%%[.-]*}" ;;
      python:*-slim-bookworm) standin_python "$image" ;;
      *) echo "error: no stand-in recipe for $image" >&2; return 1 ;;
    esac
    echo "  $image: test stand-in built ($state before; $(standin_size "$image"))"
  done
  standins_cleanup
}

standin_size() {
  docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'
}

standins_cleanup() {
  if [[ -n "$STANDIN_WORK" ]]; then
    rm -rf "$STANDIN_WORK"
    STANDIN_WORK=""
  fi
}
