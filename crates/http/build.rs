//! Rebuilds the crate when a file of the embedded web UI changes, is added
//! or is removed.
fn main() {
    println!("cargo:rerun-if-changed=ui");
}
