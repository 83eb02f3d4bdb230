fn main() {
    eprintln!("circus-node: not built yet");
    std::process::exit(2);
}
