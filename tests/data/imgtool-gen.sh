#!/bin/bash
# Regenerates tests/data/imgtool-* with MCUboot's imgtool.  Run from a
# checkout of mcu-tools/mcuboot's scripts/ directory:
#   cd mcuboot/scripts && bash /path/to/tests/data/imgtool-gen.sh OUTDIR
# (tests/data/README.md lists the imgtool version and what each file is).
set -euo pipefail
out=$1
imgtool() { /usr/bin/python3 -m imgtool.main "$@"; }
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 0xff for i in range(3000)))' > "$out/body-3000.bin"
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 13 + 1) & 0xff for i in range(1500)))' > "$out/body-1500.bin"
imgtool keygen -k "$out/key-ecdsa-p256.pem" -t ecdsa-p256
imgtool keygen -k "$out/key-ecdsa-p256-other.pem" -t ecdsa-p256
imgtool keygen -k "$out/key-ecdsa-p384.pem" -t ecdsa-p384
imgtool keygen -k "$out/key-ed25519.pem" -t ed25519
imgtool keygen -k "$out/key-rsa-2048.pem" -t rsa-2048
for k in ecdsa-p256 ed25519 rsa-2048; do
  imgtool getpub -k "$out/key-$k.pem" -e pem > "$out/key-$k.pub.pem"
done
common=(--header-size 0x200 --align 8 --slot-size 0x20000 --pad-header)
imgtool sign "${common[@]}" --version 1.2.3+4 "$out/body-3000.bin" "$out/imgtool-unsigned.bin"
imgtool sign "${common[@]}" --version 1.2.3+4 --security-counter 7 -k "$out/key-ecdsa-p256.pem" "$out/body-3000.bin" "$out/imgtool-ecdsa-p256.bin"
imgtool sign "${common[@]}" --version 1.2.3+4 --public-key-format full -k "$out/key-ecdsa-p256.pem" "$out/body-3000.bin" "$out/imgtool-pubkey-ecdsa-p256.bin"
imgtool sign "${common[@]}" --version 3.1.0+0 -k "$out/key-ecdsa-p384.pem" "$out/body-1500.bin" "$out/imgtool-ecdsa-p384.bin"
imgtool sign "${common[@]}" --version 2.0.1+77 -k "$out/key-ed25519.pem" "$out/body-3000.bin" "$out/imgtool-ed25519.bin"
imgtool sign "${common[@]}" --version 2.0.2+0 --pure -k "$out/key-ed25519.pem" "$out/body-1500.bin" "$out/imgtool-pure-ed25519.bin"
imgtool sign "${common[@]}" --version 0.9.12+65535 --security-counter 0x10203 -k "$out/key-rsa-2048.pem" "$out/body-1500.bin" "$out/imgtool-rsa-2048.bin"
imgtool sign --header-size 0x200 --align 8 --slot-size 0x2000 --pad-header --pad --version 1.0.0+1 -k "$out/key-ecdsa-p256.pem" "$out/body-1500.bin" "$out/imgtool-padded-ecdsa-p256.bin"
imgtool sign "${common[@]}" --version 4.5.6+7 --sha 512 "$out/body-1500.bin" "$out/imgtool-sha512-unsigned.bin"
for f in "$out"/imgtool-*.bin; do
  b=${f%.bin}
  imgtool dumpinfo "$f" > "$b.dumpinfo.txt" 2>&1
done
verify() { # image key
  { echo "\$ imgtool verify ${2:+-k $(basename "$2")} $(basename "$1")"; imgtool verify ${2:+-k "$2"} "$1" 2>&1 || echo "(exit status $?)"; }
}
{
  verify "$out/imgtool-unsigned.bin" ""
  verify "$out/imgtool-sha512-unsigned.bin" ""
  verify "$out/imgtool-ecdsa-p256.bin" "$out/key-ecdsa-p256.pem"
  verify "$out/imgtool-ecdsa-p256.bin" "$out/key-ecdsa-p256-other.pem"
  verify "$out/imgtool-pubkey-ecdsa-p256.bin" "$out/key-ecdsa-p256.pem"
  verify "$out/imgtool-padded-ecdsa-p256.bin" "$out/key-ecdsa-p256.pem"
  verify "$out/imgtool-ecdsa-p384.bin" "$out/key-ecdsa-p384.pem"
  verify "$out/imgtool-ed25519.bin" "$out/key-ed25519.pem"
  verify "$out/imgtool-ed25519.bin" "$out/key-ecdsa-p256.pem"
  verify "$out/imgtool-pure-ed25519.bin" "$out/key-ed25519.pem"
  verify "$out/imgtool-rsa-2048.bin" "$out/key-rsa-2048.pem"
  verify "$out/imgtool-rsa-2048.bin" "$out/key-ecdsa-p256.pem"
} > "$out/imgtool-verify.txt"
