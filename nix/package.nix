# portico built with its own Makefile, from this repository. The libraries
# are the ones scripts/deps.sh installs on Debian: http-parser, libyaml,
# OpenSSL and jansson.
{
  lib,
  stdenv,
  pkg-config,
  http-parser,
  libyaml,
  openssl,
  jansson,
}:
stdenv.mkDerivation {
  pname = "portico";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Makefile
      ../src
      ../dist
      ../docs
    ];
  };

  nativeBuildInputs = [ pkg-config ];
  buildInputs = [
    http-parser
    libyaml
    openssl
    jansson
  ];

  # The Makefile sets _FORTIFY_SOURCE, stack protection, PIE and full RELRO
  # itself and builds with -Werror: nixpkgs' own fortify flag would define
  # _FORTIFY_SOURCE a second time.
  hardeningDisable = [ "fortify" ];

  makeFlags = [ "CC=${stdenv.cc.targetPrefix}cc" ];
  # The binary goes to bin/ (lib.getExe), the configuration example to the
  # package's own etc/ (NixOS writes /etc/portico/portico.yaml itself).
  installFlags = [
    "PREFIX=$(out)"
    "SBINDIR=$(out)/bin"
    "SYSCONFDIR=$(out)/etc"
  ];

  # The tests start servers on loopback and need Python; run them with
  # `make test` on a checkout.
  doCheck = false;

  meta = {
    description = "One reverse proxy for many web apps, with Tailscale Services";
    license = lib.licenses.mit;
    mainProgram = "portico";
    platforms = lib.platforms.linux;
  };
}
