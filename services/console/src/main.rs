fn main() -> std::process::ExitCode {
    gateway_console::main()
}
