{
  description = "A single-threaded libp2p swarm over QUIC, with protocol plugins, and bandwidth_perf";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
      in
      {
        # `nix develop`: the toolchain the README's commands need.
        devShells.default = pkgs.mkShell {
          packages = with pkgs; [
            rustc
            cargo
            clippy
            rustfmt
            cargo-nextest
            pkg-config
            perf-tools
            valgrind
          ];
          RUST_BACKTRACE = "1";
        };

        # `nix build`: the binaries (bandwidth_perf, ping, examples).
        packages.default = pkgs.rustPlatform.buildRustPackage {
          pname = "swarm";
          version = "0.1.0";
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          # The test suite needs loopback UDP; run it with `cargo test` instead.
          doCheck = false;
        };
      });
}
