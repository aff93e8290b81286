use clap::Parser;

fn main() {
    let cli = banwarden::cli::Cli::parse();
    std::process::exit(banwarden::cli::main(cli));
}
