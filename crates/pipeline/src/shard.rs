//! `run --shard i/n`: split one pipeline across `n` processes, e.g. the pods of a
//! Kubernetes Indexed Job (`--shard $(JOB_COMPLETION_INDEX)/n`).
//!
//! The unit of work is a stage instance, and the instances worth spreading are a
//! matrix's: the k-th matrix instance in plan order belongs to shard `k mod n`. Every
//! other stage belongs to the shard of its first input (a conversion of
//! `prune[sparsity=0.9]` runs where that instance runs), or to shard 0 when it has no
//! input. A shard then runs
//!
//! * the stages it owns, and everything they need (shared ancestors such as the base
//!   `train` stage run in each shard that needs them; on a shared results volume a
//!   shard that comes second finds them cached);
//! * the aggregating stages (`evaluate`, `report`) over the inputs it has, so each
//!   shard's run directory is a complete, smaller report.
//!
//! A shard that owns nothing (more pods than matrix instances) has an empty plan.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use slimbench_core::config::StageParams;

use crate::resolve::{Plan, PlannedStage};

/// Shard `index` of `count` (0-based), written `index/count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// How many shards there are.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: write INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Suffix for this shard's run directory (`shard-1of4`).
    pub fn run_suffix(&self) -> String {
        format!("shard-{}of{}", self.index, self.count)
    }
}

/// Stages that gather whatever inputs they are given rather than needing each one.
fn aggregates(stage: &PlannedStage) -> bool {
    matches!(stage.params, StageParams::Evaluate(_) | StageParams::Report(_))
}

/// The part of `plan` that `shard` runs (see the module docs). Stage order is kept.
pub fn shard_plan(plan: &Plan, shard: Shard) -> Plan {
    let stages = &plan.stages;
    let pos = |id: &str| stages.iter().position(|s| s.id == id);

    // Owners, in plan order (inputs come before the stages that need them).
    let mut owner: Vec<Option<usize>> = vec![None; stages.len()];
    let mut next_matrix = 0;
    for (i, s) in stages.iter().enumerate() {
        if aggregates(s) {
            continue;
        }
        owner[i] = Some(if !s.matrix.is_empty() {
            next_matrix += 1;
            (next_matrix - 1) % shard.count
        } else {
            s.needs.iter().filter_map(|n| pos(n).and_then(|p| owner[p])).next().unwrap_or(0)
        });
    }

    // What this shard owns, plus everything those stages need (walking backwards, a
    // stage's needs are always met after the stage itself).
    let mut kept: HashSet<usize> = (0..stages.len()).filter(|&i| owner[i] == Some(shard.index)).collect();
    for i in (0..stages.len()).rev() {
        if kept.contains(&i) && !aggregates(&stages[i]) {
            kept.extend(stages[i].needs.iter().filter_map(|n| pos(n)));
        }
    }

    // Aggregators keep the inputs this shard has, and run if there is any.
    let mut out = Vec::new();
    let mut kept_ids: HashSet<&str> = HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        if aggregates(s) {
            let needs: Vec<String> =
                s.needs.iter().filter(|n| kept_ids.contains(n.as_str())).cloned().collect();
            if needs.is_empty() && !s.needs.is_empty() {
                continue;
            }
            out.push(PlannedStage { needs, ..s.clone() });
            kept_ids.insert(&s.id);
        } else if kept.contains(&i) {
            out.push(s.clone());
            kept_ids.insert(&s.id);
        }
    }
    // Aggregators that only gathered other aggregators (a report over an evaluate that
    // was dropped) were skipped above; a shard with no real work has no stages.
    if !out.iter().any(|s| !aggregates(s)) {
        out.clear();
    }
    Plan { stages: out, ..plan.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
name: sweep
datasets: { d: { kind: synthetic-digits, train_size: 100, test_size: 50 } }
models: { m: { kind: seed-cnn } }
stages:
  - { id: train, uses: train, with: { model: m, dataset: d } }
  - { id: fp16, uses: quantize, needs: train, with: { method: fp16 } }
  - { id: prune, uses: prune, needs: train, matrix: { sparsity: [0.5, 0.7, 0.9] } }
  - { id: half, uses: quantize, needs: "prune[sparsity=0.9]", with: { method: fp16 } }
  - { id: eval, uses: evaluate, needs: [train, fp16, prune, half] }
  - { id: report, uses: report, needs: eval }
"#;

    fn plan() -> Plan {
        let spec = crate::spec::parse("sweep.yaml", PIPELINE, &[]).unwrap();
        crate::resolve::resolve(&spec).unwrap()
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.stages.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn parses_and_rejects_shards() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("INDEX/COUNT"), "{bad}: {e}");
        }
    }

    #[test]
    fn one_shard_is_the_whole_plan() {
        let p = plan();
        assert_eq!(ids(&shard_plan(&p, Shard { index: 0, count: 1 })), ids(&p));
    }

    #[test]
    fn matrix_instances_are_dealt_round_robin() {
        let p = plan();
        let s0 = shard_plan(&p, Shard { index: 0, count: 2 });
        let s1 = shard_plan(&p, Shard { index: 1, count: 2 });
        assert_eq!(
            ids(&s0),
            ["train", "fp16", "prune[sparsity=0.5]", "prune[sparsity=0.9]", "half", "eval", "report"]
        );
        // Shard 1 runs the shared ancestor itself and evaluates what it has.
        assert_eq!(ids(&s1), ["train", "prune[sparsity=0.7]", "eval", "report"]);
        assert_eq!(s1.stage("eval").unwrap().needs, ["train", "prune[sparsity=0.7]"]);
        assert_eq!(s1.stage("report").unwrap().needs, ["eval"]);
    }

    #[test]
    fn a_stage_follows_its_input_and_idle_shards_are_empty() {
        let p = plan();
        // prune[0.9] is the third matrix instance: shard 2 of 3, with `half` after it.
        let s2 = shard_plan(&p, Shard { index: 2, count: 3 });
        assert_eq!(ids(&s2), ["train", "prune[sparsity=0.9]", "half", "eval", "report"]);
        let s4 = shard_plan(&p, Shard { index: 4, count: 5 });
        assert!(s4.stages.is_empty());
    }

    #[test]
    fn every_instance_runs_in_exactly_one_owning_shard() {
        let p = plan();
        for n in 1..=4 {
            let mut seen = Vec::new();
            for i in 0..n {
                let s = shard_plan(&p, Shard { index: i, count: n });
                seen.extend(s.stages.iter().filter(|s| s.id.starts_with("prune[")).map(|s| s.id.clone()));
            }
            seen.sort();
            assert_eq!(seen, ["prune[sparsity=0.5]", "prune[sparsity=0.7]", "prune[sparsity=0.9]"], "n={n}");
        }
    }
}
