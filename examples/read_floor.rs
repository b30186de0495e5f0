//! The system-call floor of tailing, for `bench/floor.sh`: every tick, one `pread` per file (a 64-byte guard plus what is new), counting
//! newlines, and nothing else: no inotify, no decoding, no metrics. What
//! the agent costs above this is its own work; this much is the kernel's.
//!
//! `cargo run --release --example read_floor -- DIR FILES SECONDS [TICK_MS]`
//! reads `DIR/0.log` .. `DIR/<FILES-1>.log` every TICK_MS (100) for
//! SECONDS and prints the lines it read.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, files, seconds, tick_ms) = match args.as_slice() {
        [d, f, s] => (d, f, s, "100"),
        [d, f, s, t] => (d, f, s, t.as_str()),
        _ => {
            eprintln!("usage: read_floor DIR FILES SECONDS [TICK_MS]");
            std::process::exit(2);
        }
    };
    let bad = |what: &str| std::io::Error::other(format!("{what} is not a number"));
    let files: usize = files.parse().map_err(|_| bad("FILES"))?;
    let seconds: u64 = seconds.parse().map_err(|_| bad("SECONDS"))?;
    let tick = Duration::from_millis(tick_ms.parse().map_err(|_| bad("TICK_MS"))?);
    let open = (0..files).map(|i| std::fs::File::open(format!("{dir}/{i}.log")));
    let open: Vec<std::fs::File> = open.collect::<Result<_, _>>()?;
    let mut pos = Vec::with_capacity(open.len());
    for f in &open {
        pos.push(f.metadata()?.len());
    }
    let mut buf = vec![0u8; 256 * 1024];
    let (mut lines, start) = (0usize, Instant::now());
    let mut next = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        next += tick;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        for (f, p) in open.iter().zip(pos.iter_mut()) {
            let guard = (*p).min(64);
            let got = f.read_at(&mut buf, *p - guard)?;
            let new = &buf[guard as usize..got.max(guard as usize)];
            lines += new.iter().filter(|&&b| b == b'\n').count();
            *p += new.len() as u64;
        }
    }
    println!("lines_read {lines}");
    Ok(())
}
