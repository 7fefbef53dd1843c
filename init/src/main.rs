fn main() {
    gateway_init::main()
}
