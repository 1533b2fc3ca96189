//! keygate-cli (stub).
fn main() {}
