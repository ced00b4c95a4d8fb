//! `slimbench launch`: start N local processes of one run on loopback, as torchrun
//! does: each gets `MASTER_ADDR=127.0.0.1`, `MASTER_PORT`, `WORLD_SIZE`, `RANK` and
//! `LOCAL_RANK`, and runs `slimbench run ...` with the same arguments. Rank 0 prints
//! the results; the others print nothing on stdout.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Failure;
use crate::cli::{GlobalArgs, LaunchArgs, LogFormat};

/// How long the other ranks get to stop on their own after one failed (they notice
/// within the training timeout) before they are killed.
const GRACE: Duration = Duration::from_secs(90);

/// Start the processes, wait for them all; fail naming every rank that failed.
pub fn run(a: LaunchArgs, global: &GlobalArgs) -> Result<(), Failure> {
    let max = slimbench_core::config::limits::MAX_PROCESSES;
    if !(1..=max).contains(&a.nproc) {
        return Err(Failure::Invalid(format!("--nproc must be between 1 and {max}, not {}", a.nproc)));
    }
    let exe =
        std::env::current_exe().map_err(|e| Failure::Failed(format!("finding this executable: {e}")))?;
    let port = match a.master_port {
        Some(p) => p,
        None => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Failure::Failed(format!("finding a free port on 127.0.0.1: {e}")))?,
    };
    tracing::info!(nproc = a.nproc, port, "launching {} local processes", a.nproc);
    let mut children: Vec<(usize, Child)> = Vec::with_capacity(a.nproc);
    for rank in 0..a.nproc {
        let mut cmd = Command::new(&exe);
        // The processes log as this one was asked to.
        if global.quiet {
            cmd.arg("--quiet");
        }
        for _ in 0..global.verbose {
            cmd.arg("--verbose");
        }
        if global.log_format == LogFormat::Json {
            cmd.args(["--log-format", "json"]);
        }
        cmd.arg("run")
            .args(&a.run_args)
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("WORLD_SIZE", a.nproc.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", a.nproc.to_string());
        if rank != 0 {
            cmd.stdout(Stdio::null());
        }
        match cmd.spawn() {
            Ok(c) => children.push((rank, c)),
            Err(e) => {
                kill_all(&mut children);
                return Err(Failure::Failed(format!("starting rank {rank}: {e}")));
            }
        }
    }
    let failures = wait_all(&mut children);
    if failures.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failures.iter().map(|(rank, why)| format!("rank {rank} {why}")).collect();
    Err(Failure::Failed(format!("launch: {}", lines.join("; "))))
}

/// Wait for every child; once one fails, the rest get [`GRACE`] and are then killed.
/// Returns `(rank, what happened)` for each rank that did not exit 0.
fn wait_all(children: &mut [(usize, Child)]) -> Vec<(usize, String)> {
    let mut status: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut failed_at: Option<Instant> = None;
    let mut killed = vec![false; children.len()];
    while status.iter().any(Option::is_none) {
        for (i, (_, child)) in children.iter_mut().enumerate() {
            if status[i].is_none()
                && let Ok(Some(s)) = child.try_wait()
            {
                status[i] = Some(s);
                if !s.success() && failed_at.is_none() {
                    failed_at = Some(Instant::now());
                }
            }
        }
        if failed_at.is_some_and(|t| t.elapsed() > GRACE) {
            for (i, (_, child)) in children.iter_mut().enumerate() {
                if status[i].is_none() {
                    let _ = child.kill();
                    killed[i] = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    children
        .iter()
        .zip(status)
        .zip(killed)
        .filter_map(|(((rank, _), s), killed)| {
            let s = s.expect("every child has exited");
            if killed {
                Some((
                    *rank,
                    format!("was stopped after {} s, when another rank had failed", GRACE.as_secs()),
                ))
            } else if s.success() {
                None
            } else {
                Some((*rank, describe(s)))
            }
        })
        .collect()
}

fn describe(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("ended: {s}"),
    }
}

fn kill_all(children: &mut [(usize, Child)]) {
    for (_, c) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
