//! PyTorch's distributed engine (c10d), as `torch.distributed` uses it: a [`Store`]
//! (`c10d::TCPStore`) where the ranks meet, and a [`ProcessGroup`] that runs
//! collectives: Gloo (`c10d::ProcessGroupGloo`, CPU tensors over TCP) or, in builds
//! with NCCL and on machines with a GPU ([`nccl_available`]), NCCL
//! (`c10d::ProcessGroupNCCL`, CUDA tensors, one GPU per rank).
//!
//! ```no_run
//! # use std::time::Duration;
//! # use slimbench_torch_ext::dist::{ProcessGroup, Store};
//! # fn main() -> slimbench_torch_ext::Result<()> {
//! let (rank, world) = (0, 2);
//! let timeout = Duration::from_secs(30);
//! // Rank 0 serves the store; every rank (rank 0 too) connects to it.
//! let store = Store::tcp("127.0.0.1", 29500, world, rank == 0, timeout)?;
//! let group = ProcessGroup::gloo(&store, rank, world, timeout)?;
//! let grad = tch::Tensor::ones([3], (tch::Kind::Float, tch::Device::Cpu));
//! group.all_reduce_mean(&[&grad])?; // the average over the ranks, in place
//! # Ok(()) }
//! ```
//!
//! Every call is bounded by the timeout it was given: a rank that never joins, leaves
//! or stops answering makes the others' calls fail with a [`BridgeError`] carrying
//! c10d's or gloo's message (a timeout, a closed connection), never hang or abort.
//! (NCCL collectives differ: see [`ProcessGroup::nccl`].) After such an error the group
//! is broken (its peers disagree on what ran): drop it; tensors passed to the failed
//! call hold unspecified values.
//!
//! As in `torch.distributed`, every rank must issue the same collectives, on tensors of
//! the same shapes and dtypes, in the same order; and create its groups on a store in
//! the same order.

use std::ffi::CString;
use std::ptr::NonNull;
use std::time::Duration;

use tch::{Device, Tensor};
use torch_sys::C_tensor;

use crate::{BridgeError, Result, ffi, torch_error};

/// Milliseconds for c10d, which reads 0 as "no timeout": a zero timeout is refused
/// rather than turned into a call that may never return.
fn millis(op: &str, timeout: Duration) -> Result<i64> {
    if timeout.is_zero() {
        return Err(BridgeError::Invalid { op: op.into(), message: "the timeout must be positive".into() });
    }
    // Sub-millisecond timeouts round up; huge ones are capped (c10d doubles some).
    Ok(timeout.as_millis().clamp(1, i64::MAX as u128 / 4) as i64)
}

/// A `c10d::TCPStore`: a key-value store served by one rank over TCP, where the ranks
/// of a job find each other.
pub struct Store {
    raw: NonNull<ffi::CStore>,
    host: String,
    port: u16,
    world_size: usize,
}

// SAFETY: TCPStore serialises its operations with a mutex and keeps no thread-affine
// state; the handle is a reference-counted pointer to it.
unsafe impl Send for Store {}
// SAFETY: as above; `&Store` only lends the store to a new ProcessGroup (its group
// counter is atomic).
unsafe impl Sync for Store {}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: a live handle, freed once. Groups made on it keep the store alive.
        unsafe { ffi::sbx_store_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store(tcp://{}:{}, world size {})", self.host, self.port, self.world_size)
    }
}

impl Store {
    /// Serve (`is_server`, usually rank 0) or join the store at `host:port` for a job of
    /// `world_size` ranks. The server listens on `port` on every interface and returns
    /// once all `world_size` ranks (itself included) have connected; a client returns
    /// once connected. Either fails after about `timeout` (no server, ranks missing;
    /// c10d's connection retries and whole-second checks may add a few seconds) or at
    /// once (the port is taken). c10d logs its retries to stderr.
    pub fn tcp(
        host: &str,
        port: u16,
        world_size: usize,
        is_server: bool,
        timeout: Duration,
    ) -> Result<Store> {
        const OP: &str = "c10d::TCPStore";
        let invalid = |message: &str| BridgeError::Invalid { op: OP.into(), message: message.into() };
        let timeout_ms = millis(OP, timeout)?;
        if world_size == 0 {
            return Err(invalid("the world size must be at least 1"));
        }
        let c_host = CString::new(host).map_err(|_| invalid("the host name contains a NUL byte"))?;
        // SAFETY: a valid C string; a null result means failure, with its message.
        let raw = unsafe {
            ffi::sbx_tcp_store_new(c_host.as_ptr(), port, world_size, is_server.into(), timeout_ms)
        };
        let raw = NonNull::new(raw).ok_or_else(|| torch_error(OP))?;
        Ok(Store { raw, host: host.to_string(), port, world_size })
    }

    /// The job's number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }
}

/// A process group: collectives between the ranks of a job, over Gloo
/// (`c10d::ProcessGroupGloo`, CPU tensors, TCP; [`gloo`](Self::gloo)) or NCCL
/// (`c10d::ProcessGroupNCCL`, CUDA tensors; [`nccl`](Self::nccl)).
///
/// Thread safety: a group may move to another thread (`Send`) but is not `Sync`, so its
/// collectives are issued from one thread at a time, which keeps their order, the order
/// every rank must agree on, well defined. (c10d itself queues them under a lock and
/// runs them on its own worker threads.) Dropping a group waits for the collectives it
/// has queued, each bounded by the group's timeout.
pub struct ProcessGroup {
    raw: NonNull<ffi::CGroup>,
    rank: usize,
    world_size: usize,
    /// `Cpu` for Gloo, this rank's GPU for NCCL.
    device: Device,
}

// SAFETY: the group's state lives in c10d objects that guard it with their own locks
// and threads; nothing is tied to the thread that made it. Not Sync: see the type docs.
unsafe impl Send for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: a live handle, freed once.
        unsafe { ffi::sbx_group_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.device {
            Device::Cuda(i) => {
                write!(f, "ProcessGroup(nccl on cuda:{i}, rank {} of {})", self.rank, self.world_size)
            }
            _ => write!(f, "ProcessGroup(gloo, rank {} of {})", self.rank, self.world_size),
        }
    }
}

impl ProcessGroup {
    /// Join the Gloo group of `world_size` ranks as `rank`, meeting the others through
    /// `store`; returns once every rank is connected to every other, or fails after
    /// `timeout`. The same timeout bounds each later collective.
    ///
    /// Gloo binds to `store`'s host when that is a loopback address (every rank on this
    /// machine, which works in containers whose hostname does not resolve); otherwise
    /// to the address this machine's hostname resolves to, or the interfaces named in
    /// `GLOO_SOCKET_IFNAME`, as `torch.distributed` does.
    pub fn gloo(store: &Store, rank: usize, world_size: usize, timeout: Duration) -> Result<ProcessGroup> {
        const OP: &str = "c10d::ProcessGroupGloo";
        let timeout_ms = group_args(OP, rank, world_size, timeout)?;
        // SAFETY: a live store handle; a null result means failure, with its message.
        let raw = unsafe { ffi::sbx_gloo_new(store.raw.as_ptr(), rank, world_size, timeout_ms) };
        let raw = NonNull::new(raw).ok_or_else(|| torch_error(OP))?;
        Ok(ProcessGroup { raw, rank, world_size, device: Device::Cpu })
    }

    /// Join the NCCL group of `world_size` ranks as `rank`, on GPU `cuda:{device_index}`,
    /// meeting the others through `store`; returns once the communicator is up on every
    /// rank (a rank that does not come fails it after the store's timeout). Each rank
    /// needs a GPU of its own: NCCL refuses two ranks of a group on one device.
    ///
    /// The collectives take CUDA tensors on that device. They return once queued on the
    /// tensors' current CUDA stream, as in `torch.distributed`: later work on that stream
    /// sees the result, and reading a tensor on the host waits for it;
    /// [`barrier`](Self::barrier) waits on the host.
    ///
    /// `timeout` bounds each collective, kept by c10d's watchdog thread, and NCCL's
    /// failures are PyTorch's: by default a collective that times out or fails ends the
    /// process, with c10d's message naming it (`TORCH_NCCL_ASYNC_ERROR_HANDLING`), since
    /// the GPU may be left running a kernel that never finishes. With
    /// `TORCH_NCCL_BLOCKING_WAIT=1` in the environment the collectives wait on the host
    /// instead, and a timeout or NCCL error is returned as a [`BridgeError`].
    ///
    /// [`BridgeError::Unavailable`] when this build has no NCCL (its message says what
    /// was missing at build time) or no CUDA device is visible.
    pub fn nccl(
        store: &Store,
        rank: usize,
        world_size: usize,
        timeout: Duration,
        device_index: usize,
    ) -> Result<ProcessGroup> {
        const OP: &str = "c10d::ProcessGroupNCCL";
        let timeout_ms = group_args(OP, rank, world_size, timeout)?;
        let devices = cuda_device_count()?;
        if devices == 0 {
            return Err(BridgeError::Unavailable {
                op: OP.into(),
                message: "no CUDA device is visible to this process (NCCL needs one GPU per rank)".into(),
            });
        }
        if device_index >= devices {
            return Err(BridgeError::Invalid {
                op: OP.into(),
                message: format!(
                    "cuda:{device_index} does not exist (this process sees {devices} CUDA devices)"
                ),
            });
        }
        #[cfg(slimbench_nccl)]
        {
            // SAFETY: a live store handle and a device index below the device count; a
            // null result means failure, with its message.
            let raw = unsafe {
                ffi::sbx_nccl_new(store.raw.as_ptr(), rank, world_size, timeout_ms, device_index as i32)
            };
            let raw = NonNull::new(raw).ok_or_else(|| torch_error(OP))?;
            Ok(ProcessGroup { raw, rank, world_size, device: Device::Cuda(device_index) })
        }
        // Not reached: without NCCL there are no devices to count.
        #[cfg(not(slimbench_nccl))]
        {
            let _ = (store, timeout_ms);
            Err(no_nccl())
        }
    }

    /// This process's rank in the group, `0..world_size()`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Where the group's tensors live: `Cpu` for Gloo, this rank's GPU for NCCL.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Replace each tensor, in place, by its sum over all ranks. Tensors of one dtype
    /// and device travel as one buffer, in one all-reduce; they may differ in shape and
    /// need not be contiguous.
    pub fn all_reduce_sum(&self, tensors: &[&Tensor]) -> Result<()> {
        self.all_reduce(tensors, false, "c10d::allreduce(sum)")
    }

    /// Replace each tensor, in place, by its mean over all ranks (the sum divided by
    /// the world size). Floating-point tensors only: integer ones are refused before
    /// anything is sent.
    pub fn all_reduce_mean(&self, tensors: &[&Tensor]) -> Result<()> {
        self.all_reduce(tensors, true, "c10d::allreduce(mean)")
    }

    fn all_reduce(&self, tensors: &[&Tensor], mean: bool, op: &str) -> Result<()> {
        let ptrs = handles(tensors);
        // SAFETY: a live group and tensor handles kept alive by `tensors` for the call
        // (c10d holds its own references to the tensors while a collective runs).
        let rc =
            unsafe { ffi::sbx_group_all_reduce(self.raw.as_ptr(), ptrs.as_ptr(), ptrs.len(), mean.into()) };
        if rc != 0 { Err(torch_error(op)) } else { Ok(()) }
    }

    /// Overwrite each tensor, in place, with rank `root`'s (which keeps its own).
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        const OP: &str = "c10d::broadcast";
        if root >= self.world_size {
            return Err(BridgeError::Invalid {
                op: OP.into(),
                message: format!("root rank {root} is not below the world size {}", self.world_size),
            });
        }
        let ptrs = handles(tensors);
        // SAFETY: as in `all_reduce`.
        let rc = unsafe { ffi::sbx_group_broadcast(self.raw.as_ptr(), ptrs.as_ptr(), ptrs.len(), root) };
        if rc != 0 { Err(torch_error(OP)) } else { Ok(()) }
    }

    /// Return once every rank has reached this barrier (after the collectives each
    /// issued before it).
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: a live group.
        if unsafe { ffi::sbx_group_barrier(self.raw.as_ptr()) } != 0 {
            return Err(torch_error("c10d::barrier"));
        }
        Ok(())
    }
}

/// Check what every backend's constructor takes; the timeout in milliseconds.
fn group_args(op: &str, rank: usize, world_size: usize, timeout: Duration) -> Result<i64> {
    let timeout_ms = millis(op, timeout)?;
    if rank >= world_size {
        return Err(BridgeError::Invalid {
            op: op.into(),
            message: format!("rank {rank} is not below the world size {world_size}"),
        });
    }
    Ok(timeout_ms)
}

/// Whether [`ProcessGroup::nccl`] can work here: this build has NCCL and this process
/// sees at least one CUDA device.
pub fn nccl_available() -> bool {
    cuda_device_count().is_ok_and(|n| n > 0)
}

/// The CUDA devices this process sees, as the NCCL part of the bridge counts them; an
/// error in builds without NCCL, saying what was missing when it was built.
fn cuda_device_count() -> Result<usize> {
    #[cfg(slimbench_nccl)]
    {
        // SAFETY: a plain call (0 without a driver or a device).
        Ok(usize::try_from(unsafe { ffi::sbx_cuda_device_count() }).unwrap_or(0))
    }
    #[cfg(not(slimbench_nccl))]
    Err(no_nccl())
}

/// Why this build has no NCCL, as build.rs found it.
#[cfg(not(slimbench_nccl))]
fn no_nccl() -> BridgeError {
    BridgeError::Unavailable {
        op: "c10d::ProcessGroupNCCL".into(),
        message: format!("this build of slimbench has no NCCL: {}", env!("SLIMBENCH_NO_NCCL")),
    }
}

fn handles(tensors: &[&Tensor]) -> Vec<*const C_tensor> {
    tensors.iter().map(|t| t.as_ptr()).collect()
}
