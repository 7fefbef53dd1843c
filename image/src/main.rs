//! `gateway-image`: see the library for what it builds.

fn main() -> std::process::ExitCode {
    gateway_image::cli::main()
}
