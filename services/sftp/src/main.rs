fn main() -> std::process::ExitCode {
    gateway_sftp::main()
}
