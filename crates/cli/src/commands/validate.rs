//! `slimbench validate`.

use crate::Failure;
use crate::cli::ValidateArgs;

/// Check each file; print `ok` lines on stdout and every problem on stderr.
pub fn run(a: ValidateArgs) -> Result<(), Failure> {
    let mut bad = 0;
    for file in &a.pipelines {
        match slimbench_pipeline::load_plan(file, &a.set) {
            Ok(plan) => {
                println!("ok: {} (pipeline `{}`, {} stages)", file.display(), plan.name, plan.stages.len())
            }
            Err(e) => {
                bad += 1;
                eprint!("{e}");
                eprintln!();
            }
        }
    }
    match bad {
        0 => Ok(()),
        n => Err(Failure::Invalid(format!("{n} of {} pipeline file(s) are invalid", a.pipelines.len()))),
    }
}
