//! `slimbench __memory` (hidden): the child process the evaluate stage starts to
//! measure one model's memory on its own (see `slimbench_eval::memory`).

use crate::Failure;
use crate::cli::MemoryArgs;

/// Print the model file's memory figures as JSON.
pub fn run(a: MemoryArgs) -> Result<(), Failure> {
    let json = slimbench_stages::measure_memory(&a.file, &a.device, a.batch).map_err(Failure::Failed)?;
    println!("{json}");
    Ok(())
}
