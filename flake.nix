{
  description = "A single-threaded libp2p swarm over QUIC, with protocol plugins, and bandwidth_perf";

  # Pinned by flake.lock: nixpkgs nixos-unstable 64c08a7ca051 (2026-05-23),
  # which carries rustc/cargo/clippy/rustfmt 1.95.0, the same compiler as
  # CI and the README's statement (the workspace needs rust-version 1.88,
  # edition 2024). `nix flake update` moves the pins; keep them in step.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
        lib = pkgs.lib;
      in
      {
        # `nix develop`: the toolchain the README's commands need.
        devShells.default = pkgs.mkShell {
          packages = with pkgs; [
            rustc
            cargo
            clippy
            rustfmt
            rust-analyzer
            cargo-nextest
            pkg-config
          ] ++ lib.optionals stdenv.hostPlatform.isLinux [
            # network-namespace tests (`ip netns`, veth, nft rules)
            iproute2
            nftables
            # profiling
            perf-tools
            valgrind
          ];
          # rust-analyzer finds the standard library sources here.
          RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
          RUST_BACKTRACE = "1";
        };

        # `nix build`: every binary of the workspace (bandwidth_perf, ping,
        # echo, kv, file-transfer, datagram) in ./result/bin.
        packages.default = pkgs.rustPlatform.buildRustPackage {
          pname = "swarm";
          version = "0.1.0";
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "--workspace" ];
          # The test suite needs loopback UDP; run it with `cargo test` instead.
          doCheck = false;
        };
      });
}
