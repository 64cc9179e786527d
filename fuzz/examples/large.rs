//! Writes the large worst-case inputs (`vramtrace_fuzz::large_inputs`) as DIR/<target>/<name>,
//! for `fuzz/run.sh` to run under the fuzzer's time limit:
//!
//!   cargo run -p vramtrace-fuzz --example large -- DIR

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: large DIR");
        std::process::exit(2);
    };
    for l in vramtrace_fuzz::large_inputs() {
        let d = dir.join(l.target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(l.name), &l.data).unwrap();
    }
}
