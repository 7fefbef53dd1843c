fn main() -> std::process::ExitCode {
    gateway_control::cli::main()
}
