fn main() -> std::process::ExitCode {
    gateway_agent::sim::main()
}
