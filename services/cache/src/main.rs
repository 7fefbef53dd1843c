fn main() -> std::process::ExitCode {
    gateway_cache::cli::main()
}
