//! Prints docs/mapping.md, generated from the mapping tables:
//! `cargo run --example mapping-doc > docs/mapping.md`
fn main() {
    print!("{}", defender_ocsf_collector::mapping::doc::render());
}
