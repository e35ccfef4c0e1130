fn main() -> std::process::ExitCode {
    hubtui::cli::main()
}
