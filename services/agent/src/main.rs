fn main() -> std::process::ExitCode {
    gateway_agent::main()
}
