//! Prints what this machine offers this caller, layer by layer.
//!
//! ```text
//! cargo run -p codejail-proc --example probe
//! ```

fn main() {
    print!("{}", codejail_proc::Probe::detect());
}
