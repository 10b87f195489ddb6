//! The `dagmm-tui` binary: everything lives in the library; this only reports errors.

fn main() {
    std::process::exit(dagmm_tui::cli::main());
}
