//! Developer tool: `cargo run -p sifr-isa --release --example scan -- PATH...` prints, for each
//! file, its level and features, or for a directory the summary of a scan and its duration.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::time::Instant;

fn main() {
    let host = sifr_isa::HostFacts::detect();
    eprintln!("host: {:?} {:?}", host.arch, host.level);
    for arg in std::env::args().skip(1) {
        let p = Path::new(&arg);
        if p.is_dir() {
            let t = Instant::now();
            match sifr_isa::ImageFacts::scan(p) {
                Ok(img) => {
                    let dt = t.elapsed();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&img.summary).unwrap_or_default()
                    );
                    for f in img
                        .files
                        .iter()
                        .filter(|f| f.needs.level > Some(sifr_isa::Level::V2))
                    {
                        println!("{:?} {} {:?}", f.needs.level, f.path, f.needs.features);
                    }
                    println!(
                        "{arg}: {} ELF files, {} MiB, {} instructions, {} skipped, {:.2} s",
                        img.summary.elf_files,
                        img.summary.elf_bytes >> 20,
                        img.summary.instructions,
                        img.skipped.len(),
                        dt.as_secs_f64()
                    );
                }
                Err(e) => eprintln!("{arg}: {e}"),
            }
        } else {
            let t = Instant::now();
            match sifr_isa::FileFacts::from_path(p) {
                Ok(f) => {
                    let dt = t.elapsed();
                    println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
                    println!("{arg}: {:.3} s", dt.as_secs_f64());
                }
                Err(e) => eprintln!("{arg}: {e}"),
            }
        }
    }
}
