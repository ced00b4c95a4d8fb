//! The distributed-launch contract: the environment PyTorch's distributed engine
//! (c10d's `env://` rendezvous) reads, and that `torchrun`, the Kubeflow PyTorchJob
//! operator and `docker/k8s/pytorchjob.yaml` set:
//!
//! | variable      | meaning                                      |
//! |---------------|----------------------------------------------|
//! | `MASTER_ADDR` | host of rank 0                               |
//! | `MASTER_PORT` | its TCP port                                 |
//! | `WORLD_SIZE`  | number of processes                          |
//! | `RANK`        | this process's rank, `0..WORLD_SIZE`         |
//! | `LOCAL_RANK`  | rank on this machine (optional; GPU to use)  |
//!
//! None of them set means a single process. Some set means all four are required and
//! must agree; a mistake is reported naming the variable, before anything runs.

use serde::{Deserialize, Serialize};

/// A process's place in a distributed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistEnv {
    /// Host of rank 0.
    pub master_addr: String,
    /// Its port.
    pub master_port: u16,
    /// Number of processes.
    pub world_size: usize,
    /// This process's rank.
    pub rank: usize,
    /// Rank on this machine, when the launcher says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rank: Option<usize>,
}

/// The required variables.
pub const VARS: [&str; 4] = ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"];

impl DistEnv {
    /// Read the contract from the process environment.
    pub fn from_env() -> Result<Option<DistEnv>, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Read the contract through `get` (the environment, or a map in tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<DistEnv>, String> {
        let set: Vec<&str> = VARS.iter().copied().filter(|v| get(v).is_some()).collect();
        if set.is_empty() {
            return Ok(None);
        }
        if let Some(missing) = VARS.iter().find(|v| !set.contains(v)) {
            return Err(format!(
                "{} set but {missing} is not: a distributed launch needs all of {}",
                set.join(", "),
                VARS.join(", ")
            ));
        }
        let number = |name: &str| -> Result<usize, String> {
            let v = get(name).unwrap_or_default();
            v.trim().parse().map_err(|_| format!("{name}=`{v}` is not a whole number"))
        };
        let master_addr = get("MASTER_ADDR").unwrap_or_default().trim().to_string();
        if master_addr.is_empty() {
            return Err("MASTER_ADDR is empty: it must name the host of rank 0".into());
        }
        let port = number("MASTER_PORT")?;
        let master_port = u16::try_from(port)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("MASTER_PORT={port} is not a TCP port (1-65535)"))?;
        let world_size = number("WORLD_SIZE")?;
        if world_size == 0 {
            return Err("WORLD_SIZE=0: a job has at least one process".into());
        }
        let rank = number("RANK")?;
        if rank >= world_size {
            return Err(format!(
                "RANK={rank} is not below WORLD_SIZE={world_size} (ranks are 0..WORLD_SIZE)"
            ));
        }
        let local_rank = match get("LOCAL_RANK") {
            Some(_) => Some(number("LOCAL_RANK")?),
            None => None,
        };
        Ok(Some(DistEnv { master_addr, master_port, world_size, rank, local_rank }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<DistEnv>, String> {
        DistEnv::from_vars(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn nothing_set_is_a_single_process() {
        assert_eq!(read(&[]).unwrap(), None);
    }

    #[test]
    fn a_pytorchjob_worker_is_read() {
        let env = read(&[
            ("MASTER_ADDR", "slimbench-ddp-master-0"),
            ("MASTER_PORT", "23456"),
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(env.master_addr, "slimbench-ddp-master-0");
        assert_eq!((env.master_port, env.world_size, env.rank, env.local_rank), (23456, 2, 1, None));
    }

    #[test]
    fn mistakes_name_the_variable() {
        let base = [("MASTER_ADDR", "h"), ("MASTER_PORT", "29500"), ("WORLD_SIZE", "2"), ("RANK", "0")];
        let with = |k: &str, v: &'static str| -> String {
            let vars: Vec<(&str, &str)> =
                base.iter().map(|&(n, old)| if n == k { (n, v) } else { (n, old) }).collect();
            read(&vars).unwrap_err()
        };
        assert!(with("RANK", "2").contains("RANK=2 is not below WORLD_SIZE=2"));
        assert!(with("MASTER_PORT", "70000").contains("MASTER_PORT=70000"));
        assert!(with("WORLD_SIZE", "two").contains("WORLD_SIZE=`two`"));
        assert!(with("WORLD_SIZE", "0").contains("WORLD_SIZE=0"));
        assert!(with("MASTER_ADDR", " ").contains("MASTER_ADDR is empty"));
        let e = read(&[("WORLD_SIZE", "2"), ("RANK", "0")]).unwrap_err();
        assert!(e.contains("MASTER_ADDR is not"), "{e}");
    }
}
