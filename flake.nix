{
  description = "nats-scion: a NATS-compatible message broker whose links run over SCION";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    flake-utils.url = "github:numtide/flake-utils";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, flake-utils, rust-overlay }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs {
          inherit system;
          overlays = [ (import rust-overlay) ];
        };
        # The toolchain is pinned in rust-toolchain.toml; nix reads the same file.
        toolchain = pkgs.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml;
        rustPlatform = pkgs.makeRustPlatform {
          cargo = toolchain;
          rustc = toolchain;
        };
        # protoc and clang are needed by scion-protobuf (tonic) and by the
        # PocketSCION interop wrapper (BoringSSL).
        nativeBuildInputs = [ pkgs.pkg-config pkgs.protobuf pkgs.cmake pkgs.clang ];
        workspace = rustPlatform.buildRustPackage {
          pname = "nats-scion";
          version = "0.1.0";
          src = pkgs.lib.cleanSource ./.;
          cargoLock.lockFile = ./Cargo.lock;
          inherit nativeBuildInputs;
          LIBCLANG_PATH = "${pkgs.libclang.lib}/lib";
          # Tests need loopback networking and nats-server; run them with
          # scripts/test.sh in the dev shell instead of the sandbox.
          doCheck = false;
          cargoBuildFlags = [ "--workspace" "--bins" ];
          # Ship the seed configs next to the binaries so
          # `cd result/bin && ./broker -c server1.conf` works as the seed shows.
          postInstall = ''
            cp ${./configs}/*.conf $out/bin/
          '';
        };
      in
      {
        packages = {
          default = workspace;
          nats-scion = workspace;
        };

        apps = {
          broker = { type = "app"; program = "${workspace}/bin/broker"; };
          timesync = { type = "app"; program = "${workspace}/bin/timesync"; };
          scion-emu = { type = "app"; program = "${workspace}/bin/scion-emu"; };
        };

        devShells.default = pkgs.mkShell {
          packages = [
            toolchain
            pkgs.cargo-nextest
            pkgs.cargo-fuzz
            pkgs.nats-server
            pkgs.natscli
            pkgs.go
            pkgs.python3
            pkgs.iproute2
            pkgs.util-linux # unshare, for the IPv6 tests' network namespaces
          ] ++ nativeBuildInputs;
          LIBCLANG_PATH = "${pkgs.libclang.lib}/lib";
          shellHook = ''
            echo "nats-scion dev shell: cargo build --workspace; bash scripts/test.sh"
          '';
        };
      });
}
