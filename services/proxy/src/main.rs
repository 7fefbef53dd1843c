fn main() -> std::process::ExitCode {
    gateway_proxy::cli::main()
}
