#!/usr/bin/env bash
# Compiles every ebpf/*.bpf.c into the .bpf.o beside it, which the sandbox crate embeds.
# The objects are committed so that building sandbox needs no clang.
#
#   bash ebpf/build.sh          rebuild the objects
#   bash ebpf/build.sh --check  rebuild into a temporary directory and fail if a committed
#                               object differs from its source (CI runs this)
#
# Needs clang-19 and llvm-19 (llvm-strip) and libbpf-dev (bpf/*.h), from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
STRIP=${STRIP:-llvm-strip-19}
check=0
[ "${1:-}" = "--check" ] && check=1
out=.
if [ $check = 1 ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
status=0
for src in *.bpf.c; do
  obj="$out/${src%.c}.o"
  # -g keeps the BTF aya needs for maps; the strip then drops DWARF but keeps .BTF/.BTF.ext.
  # The prefix map keeps this checkout's path out of the object, so builds are reproducible.
  "$CLANG" -O2 -g -target bpf -D__TARGET_ARCH_x86 -I. -I/usr/include/x86_64-linux-gnu \
    -fdebug-prefix-map="$PWD"=. -fdebug-compilation-dir=. -c "$src" -o "$obj"
  "$STRIP" -g "$obj"
  if [ $check = 1 ] && ! cmp -s "$obj" "${src%.c}.o"; then
    echo "ebpf/${src%.c}.o is stale: run 'bash ebpf/build.sh' and commit the result" >&2
    status=1
  fi
done
[ $check = 1 ] && [ $status = 0 ] && echo "ebpf objects match their sources"
exit $status
