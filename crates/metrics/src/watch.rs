//! Is the machine quiet enough for a timing to mean something?
//!
//! A [`Watch`] is started before a block of timed work on the thread that does it and
//! read when the block ends. It compares what the timing thread got with what the
//! machine did meanwhile:
//!
//! * the timing thread's CPU time over the wall time (`CLOCK_THREAD_CPUTIME_ID`): a busy
//!   thread that is not preempted stays near 1; a neighbour on its core pulls it down;
//! * other processes' CPU time, as a share of all CPUs: the machine's busy time from
//!   `/proc/stat` less this process's own from `/proc/self/stat`;
//! * steal time (`/proc/stat`): the hypervisor running someone else on these CPUs;
//! * the mean CPU clock from `/proc/cpuinfo`, where the machine reports it.
//!
//! [`Observation::verdict`] turns these into `valid` or a reason, by [`Thresholds`].
//! What cannot be read (no `/proc`, another OS) is NaN and judged on what remains.

use std::time::Instant;

/// When a block's timing no longer counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The timing thread's CPU / wall below this: it was preempted.
    pub min_thread_cpu_ratio: f64,
    /// Other processes' CPU share above this.
    pub max_others_share: f64,
    /// Steal share above this.
    pub max_steal_share: f64,
    /// Relative change of the mean CPU clock across a block above this.
    pub max_clock_change: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_thread_cpu_ratio: 0.8,
            max_others_share: 0.15,
            max_steal_share: 0.05,
            max_clock_change: 0.1,
        }
    }
}

/// The machine's CPU counters, in clock ticks summed over every CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTicks {
    /// Every state.
    total: u64,
    /// Not idle, not waiting for I/O, not stolen.
    busy: u64,
    /// Stolen by the hypervisor.
    steal: u64,
}

/// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal guest guest_nice (guest time is already counted in user and nice).
fn parse_proc_stat(text: &str) -> Option<CpuTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    let total: u64 = v[..8].iter().sum();
    let (idle, iowait, steal) = (v[3], v[4], v[7]);
    Some(CpuTicks { total, busy: total - idle - iowait - steal, steal })
}

fn cpu_ticks() -> Option<CpuTicks> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// utime + stime of `/proc/self/stat` (fields 14 and 15; the command name in field 2
/// may hold spaces, so count from the closing parenthesis).
fn parse_self_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn own_ticks() -> Option<u64> {
    parse_self_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Mean of the `cpu MHz` lines of `/proc/cpuinfo`.
fn parse_cpu_mhz(text: &str) -> Option<f64> {
    let mhz: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
        .collect();
    (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64)
}

fn cpu_mhz() -> Option<f64> {
    parse_cpu_mhz(&std::fs::read_to_string("/proc/cpuinfo").ok()?)
}

/// CPU seconds the calling thread has run.
fn thread_cpu_s() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Counters at the start of a block; [`Watch::finish`] on the same thread reads the
/// block.
#[derive(Debug, Clone)]
pub struct Watch {
    wall: Instant,
    thread_cpu: Option<f64>,
    machine: Option<CpuTicks>,
    own: Option<u64>,
    mhz: Option<f64>,
}

/// What the machine did during a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Wall seconds.
    pub wall_s: f64,
    /// The timing thread's CPU time / wall time (NaN when not readable or not asked).
    pub thread_cpu_ratio: f64,
    /// Other processes' CPU time over all CPUs' time (NaN when not readable).
    pub others_cpu_share: f64,
    /// Stolen time over all CPUs' time.
    pub steal_share: f64,
    /// Mean CPU clock at the end, MHz.
    pub cpu_mhz: f64,
    /// Relative change of the mean clock from start to end.
    pub clock_change: f64,
}

impl Watch {
    /// Read the counters now.
    pub fn start() -> Watch {
        Watch {
            machine: cpu_ticks(),
            own: own_ticks(),
            mhz: cpu_mhz(),
            thread_cpu: thread_cpu_s(),
            wall: Instant::now(),
        }
    }

    /// Read them again and describe the block. `thread_busy`: whether the timing thread
    /// computed throughout (on a CPU); waiting on a GPU is not being preempted, so
    /// without it the thread ratio is not judged.
    pub fn finish(&self, thread_busy: bool) -> Observation {
        let wall_s = self.wall.elapsed().as_secs_f64();
        let thread_cpu_ratio = match (thread_busy, self.thread_cpu, thread_cpu_s()) {
            (true, Some(a), Some(b)) if wall_s > 0.0 => (b - a) / wall_s,
            _ => f64::NAN,
        };
        let (others_cpu_share, steal_share) = match (self.machine, cpu_ticks(), self.own, own_ticks()) {
            (Some(a), Some(b), Some(oa), Some(ob)) if b.total > a.total => {
                let total = (b.total - a.total) as f64;
                let busy = b.busy.saturating_sub(a.busy) as f64;
                let own = ob.saturating_sub(oa) as f64;
                (((busy - own) / total).max(0.0), b.steal.saturating_sub(a.steal) as f64 / total)
            }
            _ => (f64::NAN, f64::NAN),
        };
        let mhz = cpu_mhz();
        let clock_change = match (self.mhz, mhz) {
            (Some(a), Some(b)) if a > 0.0 => (b - a).abs() / a,
            _ => f64::NAN,
        };
        Observation {
            wall_s,
            thread_cpu_ratio,
            others_cpu_share,
            steal_share,
            cpu_mhz: mhz.unwrap_or(f64::NAN),
            clock_change,
        }
    }
}

impl Observation {
    /// `Ok` when the block ran on a quiet machine, else why not (every reason found,
    /// joined). Unreadable counters are not held against it.
    pub fn verdict(&self, t: &Thresholds) -> Result<(), String> {
        let mut why = Vec::new();
        // Jiffy-based shares of a block under ~50 ms are mostly rounding.
        let long_enough = self.wall_s >= 0.05;
        if long_enough && self.others_cpu_share > t.max_others_share {
            why.push(format!("other processes used {:.0}% of the CPUs", self.others_cpu_share * 100.0));
        }
        if long_enough && self.steal_share > t.max_steal_share {
            why.push(format!("the hypervisor stole {:.0}% of the CPU time", self.steal_share * 100.0));
        }
        if self.thread_cpu_ratio < t.min_thread_cpu_ratio {
            why.push(format!(
                "the timing thread ran only {:.0}% of the wall time (preempted)",
                self.thread_cpu_ratio * 100.0
            ));
        }
        if self.clock_change > t.max_clock_change {
            why.push(format!("the CPU clock changed by {:.0}%", self.clock_change * 100.0));
        }
        if why.is_empty() { Ok(()) } else { Err(why.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_files() {
        let stat = "cpu  100 5 50 800 20 1 2 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let t = parse_proc_stat(stat).unwrap();
        assert_eq!((t.total, t.busy, t.steal), (1008, 158, 30));
        assert_eq!(parse_proc_stat("intr 1 2 3"), None);
        let own = "4242 (my (odd) name) R 1 2 3 4 5 6 7 8 9 10 17 4 0 0 20 0";
        assert_eq!(parse_self_stat(own), Some(21));
        assert_eq!(parse_cpu_mhz("cpu MHz\t\t: 2000.0\nx\ncpu MHz\t: 3000.0\n"), Some(2500.0));
        assert_eq!(parse_cpu_mhz("processor: 0"), None);
    }

    #[test]
    fn verdicts_name_every_reason() {
        let quiet = Observation {
            wall_s: 1.0,
            thread_cpu_ratio: 0.99,
            others_cpu_share: 0.01,
            steal_share: 0.0,
            cpu_mhz: 2400.0,
            clock_change: 0.0,
        };
        let t = Thresholds::default();
        assert_eq!(quiet.verdict(&t), Ok(()));
        let loaded = Observation { thread_cpu_ratio: 0.5, others_cpu_share: 0.48, ..quiet };
        let why = loaded.verdict(&t).unwrap_err();
        assert_eq!(
            why,
            "other processes used 48% of the CPUs; the timing thread ran only 50% of the wall time (preempted)"
        );
        // Unreadable counters are NaN and judged on nothing.
        let blind = Observation { thread_cpu_ratio: f64::NAN, others_cpu_share: f64::NAN, ..quiet };
        assert_eq!(blind.verdict(&t), Ok(()));
        // A block too short for jiffies is not judged on them.
        assert_eq!(Observation { wall_s: 0.01, others_cpu_share: 0.5, ..quiet }.verdict(&t), Ok(()));
    }

    #[test]
    fn a_busy_thread_on_this_machine_reads_its_counters() {
        let w = Watch::start();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 120 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let o = w.finish(true);
        assert!(o.wall_s >= 0.12);
        if cfg!(target_os = "linux") {
            assert!(o.thread_cpu_ratio > 0.0 && o.thread_cpu_ratio <= 1.05, "{o:?}");
            assert!((0.0..=1.0).contains(&o.others_cpu_share), "{o:?}");
        }
    }
}
