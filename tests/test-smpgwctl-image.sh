#!/usr/bin/env bash
# smpgwctl image info against images signed by MCUboot's own imgtool: the
# version, image size and hash must be what imgtool recorded
# (tests/data/imgtool-verify.txt, tests/data/*.dumpinfo.txt), signatures
# valid with the signing key and not with another, and corrupted copies
# rejected with the documented exit codes; and, as root, an image read
# with OpenSSL's libcrypto hidden (libsmpgw loads it with the first key).
#
# Environment: SMPGWCTL (the binary), SMPGW_TEST_DATA (tests/data).
set -euo pipefail

: "${SMPGWCTL:?set SMPGWCTL to the smpgwctl binary}"
: "${SMPGW_TEST_DATA:?set SMPGW_TEST_DATA to tests/data}"
data=$SMPGW_TEST_DATA
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }

# run EXPECTED_EXIT ARGS...: runs smpgwctl, output in $tmp/out and $tmp/err
run() {
  local want=$1 rc=0
  shift
  "$SMPGWCTL" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "# smpgwctl $* exited $rc, expected $want" >&2
    sed 's/^/#   /' "$tmp/out" "$tmp/err" >&2
    return 1
  fi
}

field() { # the value after "NAME:" in smpgwctl's text output
  awk -v k="$1:" 'index($0, k) == 1 { sub(k " *", ""); print; exit }' "$tmp/out"
}

# The hash TLV bytes as imgtool dumpinfo printed them ("data: 0x3d 0x4c ...").
dumpinfo_hash() {
  awk '/type: SHA(256|384|512) / { h = 1; next }
       h && /data:/ { d = 1; sub(/.*data:/, "") }
       d && !/^ *(0x[0-9a-f][0-9a-f] *)+$/ { exit }
       d { for (i = 1; i <= NF; i++) printf "%s", substr($i, 3) }' "$1"
}

dumpinfo_img_size() { awk '/^img_size:/ { print $2; exit }' "$1"; }

# 1. Every `imgtool verify` recorded in imgtool-verify.txt.
while IFS= read -r line; do
  case $line in
    '$ imgtool verify '*)
      set -- ${line#\$ imgtool verify }
      key= image=
      if [ "$1" = -k ]; then key=$2; image=$3; else image=$1; fi
      cmd=(image info "$data/$image")
      [ -n "$key" ] && cmd+=(--key "$data/$key")
      ;;
    'Image was correctly validated')
      verdict=valid ;;
    'No signature found for the given key')
      verdict=wrong-key ;;
    'Image version: '*)
      version=${line#Image version: } ;;
    'Image digest: '*)
      digest=${line#Image digest: } ;;
    '(exit status'*|'Image signature over image: '*) ;;
    *) echo "# unexpected line in imgtool-verify.txt: $line" >&2 ;;
  esac
  # a block ends with its digest/signature line (valid) or exit status
  case $line in
    'Image digest: '*|'Image signature over image: '*)
      name="$image${key:+ with $key}: matches imgtool verify"
      if ! run 0 "${cmd[@]}"; then not_ok "$name"; continue; fi
      got_version=$(field version)
      got_hash=$(field hash | cut -d' ' -f1)
      got_size=$(field 'image size' | sed 's/.*(\(0x[0-9a-f]*\))/\1/')
      want_hash=${digest:-$(dumpinfo_hash "$data/${image%.bin}.dumpinfo.txt")}
      want_size=$(dumpinfo_img_size "$data/${image%.bin}.dumpinfo.txt")
      if [ "$got_version" != "$version" ]; then
        not_ok "$name (version '$got_version', imgtool '$version')"
      elif [ "$got_hash" != "$want_hash" ]; then
        not_ok "$name (hash $got_hash, imgtool $want_hash)"
      elif [ "$got_size" != "$want_size" ]; then
        not_ok "$name (image size $got_size, imgtool $want_size)"
      elif [ -n "$key" ] && ! grep -q ": valid, key $data/$key " "$tmp/out"; then
        not_ok "$name (signature not reported valid with $key)"
      else
        ok "$name"
      fi
      digest= key= verdict= ;;
    '(exit status'*)
      name="$image with $key: no signature valid, as imgtool says"
      if [ "$verdict" = wrong-key ] && run 5 "${cmd[@]}" &&
         ! grep -q ': valid' "$tmp/out" && grep -q 'no signature is valid' "$tmp/err"; then
        ok "$name"
      else
        not_ok "$name"
      fi
      digest= key= verdict= ;;
  esac
done < "$data/imgtool-verify.txt"

# 2. The dumpinfo hash equals the verify digest for every image (the two
# records agree), and smpgwctl prints it for images verify did not cover.
for d in "$data"/imgtool-*.dumpinfo.txt; do
  image=$(basename "${d%.dumpinfo.txt}").bin
  if run 0 image info "$data/$image" && [ "$(field hash | cut -d' ' -f1)" = "$(dumpinfo_hash "$d")" ]; then
    ok "$image: hash equals imgtool dumpinfo's hash TLV"
  else
    not_ok "$image: hash equals imgtool dumpinfo's hash TLV"
  fi
done

# 3. Corrupted copies.
src="$data/imgtool-ecdsa-p256.bin"
key="$data/key-ecdsa-p256.pem"
size=$(stat -c %s "$src")

cp "$src" "$tmp/flipped.bin"
printf '\x55' | dd of="$tmp/flipped.bin" bs=1 seek=$((0x200 + 100)) conv=notrunc status=none
if run 4 image info "$tmp/flipped.bin" --key "$key" && grep -q '(SHA256, mismatch)' "$tmp/out" &&
   grep -q 'does not match' "$tmp/err" && grep -q 'ECDSA_SIG at 0x[0-9a-f]*: invalid' "$tmp/out"; then
  ok "a changed body byte: hash mismatch, signature invalid, exit 4"
else
  not_ok "a changed body byte: hash mismatch, signature invalid, exit 4"
fi

head -c $((size - 10)) "$src" > "$tmp/truncated.bin"
if run 3 image info "$tmp/truncated.bin" && grep -q 'runs past the end of the file' "$tmp/err"; then
  ok "a truncated TLV area is rejected, exit 3"
else
  not_ok "a truncated TLV area is rejected, exit 3"
fi

head -c 1000 "$src" > "$tmp/short.bin"
if run 3 image info "$tmp/short.bin" &&
   grep -q 'header says image size 3000 but file has only 488 bytes after the header' "$tmp/err"; then
  ok "a truncated body is rejected with the sizes, exit 3"
else
  not_ok "a truncated body is rejected with the sizes, exit 3"
fi

{ cat "$src"; printf 'garbage'; } > "$tmp/trailing.bin"
if run 3 image info "$tmp/trailing.bin" && grep -q 'neither an MCUboot trailer nor erased flash' "$tmp/err"; then
  ok "trailing garbage is rejected, exit 3"
else
  not_ok "trailing garbage is rejected, exit 3"
fi

if run 3 image info "$key"; then ok "a key file is not an image, exit 3"; else not_ok "a key file is not an image, exit 3"; fi

if run 1 image info "$tmp/does-not-exist.bin" && grep -q 'No such file' "$tmp/err"; then
  ok "a missing file, exit 1"
else
  not_ok "a missing file, exit 1"
fi

if run 1 image info "$src" --key "$src" && grep -q 'cannot load key' "$tmp/err"; then
  ok "an image given as key, exit 1"
else
  not_ok "an image given as key, exit 1"
fi

# 4. Public key files (imgtool getpub -e pem) work like the private ones.
if run 0 image info "$data/imgtool-rsa-2048.bin" --key "$data/key-ecdsa-p256.pub.pem" \
       --key "$data/key-rsa-2048.pub.pem" &&
   grep -q "RSA2048_PSS at 0x[0-9a-f]*: valid, key $data/key-rsa-2048.pub.pem (rsa-2048, by keyhash)" "$tmp/out"; then
  ok "public key files; the key picked by KEYHASH"
else
  not_ok "public key files; the key picked by KEYHASH"
fi

# 5. JSON.
json_check() { # python expression over the parsed document `d`
  /usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$tmp/out" "$1"
}
if run 0 --json image info "$data/imgtool-ed25519.bin" --key "$data/key-ed25519.pem" &&
   json_check 'd["version"] == "2.0.1+77" and d["image_size"] == 3000 and d["hash"]["status"] == "match" and d["hash"]["value"] == "41bb693a59c1199f7b5a00170e86a4a4392f008ac9ffd5b39a223dc1bd25b63e" and d["sha256_tlv"] == d["hash"]["value"] and d["signatures"][0]["status"] == "valid" and d["signatures"][0]["key_match"] == "keyhash" and d["ok"] and [t["name"] for t in d["tlvs"]] == ["SHA256", "KEYHASH", "ED25519"]'; then
  ok "--json output"
else
  not_ok "--json output"
fi
if run 3 image info --json "$tmp/short.bin" && json_check 'not d["ok"] and "image size 3000" in d["error"]'; then
  ok "--json error output"
else
  not_ok "--json error output"
fi

# 6. Help and usage.
if run 0 --help && grep -q 'image info' "$tmp/out"; then ok "smpgwctl --help"; else not_ok "smpgwctl --help"; fi
if run 0 image info --help && grep -q 'Exit codes' "$tmp/out"; then ok "image info --help"; else not_ok "image info --help"; fi
if run 2 frobnicate; then ok "unknown command, exit 2"; else not_ok "unknown command, exit 2"; fi
if run 2 image info; then ok "image info without FILE, exit 2"; else not_ok "image info without FILE, exit 2"; fi

# 7. libsmpgw loads OpenSSL's libcrypto with the first key
#    (lib/libcrypto-dlopen.h).  With it hidden (an empty file bound over
#    it in a mount namespace of our own, which takes root), an image is
#    still read without --key, and --key says what is missing.
libcrypto=
if command -v openssl >/dev/null; then
  libcrypto=$(ldd "$(command -v openssl)" | awk '$1 ~ /^libcrypto\.so\./ { print $3; exit }')
fi
without_libcrypto() { # EXPECTED_EXIT ARGS...: run, with libcrypto hidden
  local want=$1 rc=0
  shift
  unshare --mount --propagation private -- sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh \
    "$(readlink -f "$libcrypto")" "$SMPGWCTL" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "# smpgwctl $* without libcrypto exited $rc, expected $want" >&2
    sed 's/^/#   /' "$tmp/out" "$tmp/err" >&2
    return 1
  fi
}
if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null || [ -z "$libcrypto" ]; then
  n=$((n + 1)); echo "ok $n # SKIP hiding libcrypto takes root, unshare and openssl's libcrypto"
  n=$((n + 1)); echo "ok $n # SKIP hiding libcrypto takes root, unshare and openssl's libcrypto"
else
  if without_libcrypto 0 image info "$data/imgtool-ecdsa-p256.bin" && grep -q 'ECDSA_SIG at 0x[0-9a-f]*: no key' "$tmp/out"; then
    ok "without libcrypto: an image read and hashed, no key given"
  else
    not_ok "without libcrypto: an image read and hashed, no key given"
  fi
  if without_libcrypto 1 image info "$data/imgtool-ecdsa-p256.bin" --key "$data/key-ecdsa-p256.pub.pem" &&
     grep -q "cannot load key .*OpenSSL's libcrypto .*cannot be loaded" "$tmp/err"; then
    ok "without libcrypto: --key says libcrypto cannot be loaded"
  else
    not_ok "without libcrypto: --key says libcrypto cannot be loaded"
  fi
fi

echo "1..$n"
[ "$failed" -eq 0 ]
