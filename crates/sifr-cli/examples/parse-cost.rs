//! How long sifr takes to parse an `exec` command line that uses many of its options (clap tree
//! for `exec`, twins left aside): `bench/cli/run.sh` prints it, best of several rounds.
#![allow(clippy::print_stdout)]

use clap::Parser as _;

fn main() {
    let args = [
        "sifr", "-q", "exec", "-B", "/a:/b:ro,/c", "--bind", "/d", "-e", "--env", "A=1", "-c",
        "--no-home", "--pwd", "/tmp", "-p", "-i", "--uts", "--hostname", "h", "--no-mount",
        "tmp,home", "--mount", "type=bind,src=/x,dst=/y", "--env-file", "/e", "--no-init",
        "--no-umask", "--unsquash", "--no-env", "X,Y", "--no-eval", "--compat", "--nv",
        "--no-https", "--disable-cache", "--writable-tmpfs", "img.sif", "cmd", "-c", "x",
    ];
    let rounds = 2000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            let cli = sifr_cli::args::Cli::try_parse_from(args).expect("parses");
            std::hint::black_box(cli);
        }
        best = best.min(t.elapsed().as_secs_f64() / f64::from(rounds));
    }
    println!("parse exec with {} arguments: {:.1} us", args.len() - 1, best * 1e6);
}
