fn main() -> std::process::ExitCode {
    gateway_platform_sim::main()
}
