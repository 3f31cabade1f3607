//! Writes the seed inputs of every target into `corpus/<target>/`:
//! `cargo run --example seed` from `swarm/fuzz`.

fn main() -> std::io::Result<()> {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    swarm_fuzz::write_seeds(&corpus)
}
