//! c10d through the bridge: ranks are threads of this process, meeting on a loopback
//! TCPStore at a free port. The failure cases check that a missing or departed peer is
//! an error within the timeout, not a hang. Those leave c10d threads behind (a store
//! server that gave up, a broken group's workers), so each runs [`isolated`]: in a child
//! process of its own, which leaves without running libtorch's exit-time destructors.
//! (The SIGSEGVs once blamed on those leftovers were c10d's flight-recorder race, which
//! the bridge now avoids: see `two_ranks_reduce_broadcast_and_barrier`.) The same
//! failures across processes of a launch are checked by the CLI's integration tests
//! (`integration/parallel.rs`: a rank killed mid-training).
//!
//! NCCL needs a GPU per rank: its test runs one rank on a machine with one GPU, two with
//! two or more, and is skipped (saying why) without NCCL or a GPU; a second test checks
//! that asking for NCCL where it cannot work is a clear error.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use slimbench_torch_ext::BridgeError;
use slimbench_torch_ext::dist::{self, ProcessGroup, Store};
use tch::{Device, Kind, Tensor};

const HOST: &str = "127.0.0.1";
/// For calls expected to succeed (generous: the test machine may be busy).
const OK_TIMEOUT: Duration = Duration::from_secs(60);
/// For calls expected to fail.
const SHORT: Duration = Duration::from_secs(5);
/// What "bounded" means for a failing call given SHORT.
const BOUND: Duration = Duration::from_secs(60);

/// One test at a time: each picks "free" ports and lets them go before c10d binds
/// them, so tests running side by side could meet each other's stores; and c10d's
/// failure paths (a store server giving up, a group torn down after a timeout) are
/// not meant to overlap in one process.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A port nothing listens on right now (the OS picks it; we let it go again).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind((HOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn join(port: u16, rank: usize, world: usize, timeout: Duration) -> (Store, ProcessGroup) {
    let store = Store::tcp(HOST, port, world, rank == 0, timeout).unwrap();
    let group = ProcessGroup::gloo(&store, rank, world, timeout).unwrap();
    (store, group)
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.flatten(0, -1).to_device(Device::Cpu)).unwrap()
}

/// The environment variable that tells a child which test body to run.
const ISOLATED: &str = "SLIMBENCH_ISOLATED_TEST";
/// What the child prints when its body passed.
const PASSED: &str = "isolated test passed";

/// Run `body` in a child process (this test binary, filtered to `name`), so whatever
/// c10d leaves running after a failure cannot touch the other tests. The child ends
/// with `_exit` once the body passed: the threads c10d left behind may still be
/// blocked in a socket, and libtorch's exit-time destructors would race them. A
/// panic in the child fails the parent with the child's output.
fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var(ISOLATED).is_ok_and(|v| v == name) {
        body();
        println!("{PASSED}");
        std::io::stdout().flush().unwrap();
        std::io::stderr().flush().unwrap();
        // SAFETY: ends the process at once; nothing of this process is used after it.
        unsafe { libc::_exit(0) };
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ISOLATED, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hang is a failure too: the child is killed after a deadline well past BOUND.
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(3 * BOUND) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: signals the child this test started; it has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{name} hung in its own process for {:?}", 3 * BOUND);
        }
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stdout.contains(PASSED),
        "{name} failed in its own process ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

fn assert_fails_in_time(what: &str, started: Instant, err: BridgeError) -> String {
    let elapsed = started.elapsed();
    let msg = err.to_string();
    eprintln!("{what}: failed after {elapsed:?}: {msg}");
    assert!(elapsed < BOUND, "{what} took {elapsed:?}");
    let (_, message) = msg.split_once(": ").unwrap_or(("", &msg));
    assert!(!message.trim().is_empty(), "{what}: empty message: {msg:?}");
    msg
}

#[test]
fn two_ranks_reduce_broadcast_and_barrier() {
    let _serial = serial();
    // The bridge turned c10d's flight recorder off before main: with it on, two groups
    // of one process racing to their first collective crash it (dist.cpp).
    assert_eq!(std::env::var("TORCH_FR_BUFFER_SIZE").as_deref(), Ok("0"));
    fn assert_send<T: Send>() {}
    assert_send::<ProcessGroup>();

    let port = free_port();
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            thread::spawn(move || {
                let (store, group) = join(port, rank, 2, OK_TIMEOUT);
                assert_eq!((group.rank(), group.world_size()), (rank, 2));
                let r = rank as f32;

                // Two dtypes (two buckets), shapes that differ, a non-contiguous view.
                let a = Tensor::from_slice(&[1.0 + r, 2.0 + r, 3.0 + r]);
                let b = Tensor::from_slice(&[10 * (rank as i64 + 1)]);
                let c = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape([2, 3])
                    * f64::from(r + 1.0);
                let ct = c.tr();
                assert!(!ct.is_contiguous());
                group.all_reduce_sum(&[&a, &b, &ct]).unwrap();
                assert_eq!(floats(&a), [3.0, 5.0, 7.0]);
                assert_eq!(Vec::<i64>::try_from(&b).unwrap(), [30]);
                assert_eq!(floats(&c), [3.0, 6.0, 9.0, 12.0, 15.0, 18.0]);

                let m = Tensor::from_slice(&[r, 10.0 * r]);
                group.all_reduce_mean(&[&m]).unwrap();
                assert_eq!(floats(&m), [0.5, 5.0]);

                let x = Tensor::from_slice(&[r + 100.0, r + 200.0]);
                let y = Tensor::full([2, 2], rank as i64, (Kind::Int64, Device::Cpu));
                group.broadcast(&[&x, &y], 0).unwrap();
                assert_eq!(floats(&x), [100.0, 200.0]);
                assert_eq!(Vec::<i64>::try_from(&y.flatten(0, -1)).unwrap(), [0; 4]);
                group.barrier().unwrap();

                // Nothing to send is no collective (each rank decides alike).
                group.all_reduce_sum(&[]).unwrap();

                // The group runs on another thread; a second group on the same store
                // gets its own rendezvous keys.
                let z = thread::spawn(move || {
                    let z = Tensor::from_slice(&[1.0f32]);
                    group.all_reduce_sum(&[&z]).unwrap();
                    group.barrier().unwrap();
                    floats(&z)
                })
                .join()
                .unwrap();
                assert_eq!(z, [2.0]);
                let second = ProcessGroup::gloo(&store, rank, 2, OK_TIMEOUT).unwrap();
                let w = Tensor::from_slice(&[r]);
                second.broadcast(&[&w], 1).unwrap();
                assert_eq!(floats(&w), [1.0]);
                second.barrier().unwrap();
            })
        })
        .collect();
    for r in ranks {
        r.join().unwrap();
    }
}

#[test]
fn a_rank_that_never_joins_the_store_is_a_timeout() {
    let _serial = serial();
    isolated("a_rank_that_never_joins_the_store_is_a_timeout", || {
        let started = Instant::now();
        let err = Store::tcp(HOST, free_port(), 2, true, SHORT).unwrap_err();
        assert_fails_in_time("server without its worker", started, err);

        // A client with no server: connection refused until the timeout.
        let started = Instant::now();
        let err = Store::tcp(HOST, free_port(), 2, false, SHORT).unwrap_err();
        assert_fails_in_time("client without a server", started, err);
    });
}

#[test]
fn a_rank_that_never_joins_the_group_is_a_timeout() {
    let _serial = serial();
    isolated("a_rank_that_never_joins_the_group_is_a_timeout", || {
        let port = free_port();
        let (done, wait_done) = mpsc::channel::<()>();
        // Rank 1 joins the store but never the group; it stays connected until rank 0 is
        // done, so rank 0 waits on a live store for keys that never come.
        let peer = thread::spawn(move || {
            let _store = Store::tcp(HOST, port, 2, false, OK_TIMEOUT).unwrap();
            wait_done.recv().ok();
        });
        let store = Store::tcp(HOST, port, 2, true, OK_TIMEOUT).unwrap();
        let started = Instant::now();
        let err = ProcessGroup::gloo(&store, 0, 2, SHORT).unwrap_err();
        assert_fails_in_time("group without rank 1", started, err);
        done.send(()).unwrap();
        peer.join().unwrap();
    });
}

#[test]
fn a_peer_that_leaves_or_goes_silent_fails_the_collective() {
    let _serial = serial();
    isolated("a_peer_that_leaves_or_goes_silent_fails_the_collective", || {
        // Left: rank 1 drops its group (closing its connections) before rank 0 reduces.
        let port = free_port();
        let peer = thread::spawn(move || {
            let (store, group) = join(port, 1, 2, OK_TIMEOUT);
            drop(group);
            store
        });
        let (_store, group) = join(port, 0, 2, SHORT);
        let _peer_store = peer.join().unwrap();
        let t = Tensor::ones([4], (Kind::Float, Device::Cpu));
        let started = Instant::now();
        let err = group.all_reduce_sum(&[&t]).unwrap_err();
        assert_fails_in_time("all_reduce after the peer left", started, err);
        drop(group);

        // Silent: rank 1 keeps its group open but issues nothing until rank 0 has failed.
        let port = free_port();
        let (done, wait_done) = mpsc::channel::<()>();
        let peer = thread::spawn(move || {
            let (_store, _group) = join(port, 1, 2, OK_TIMEOUT);
            wait_done.recv().ok();
        });
        let (_store, group) = join(port, 0, 2, SHORT);
        let started = Instant::now();
        let err = group.barrier().unwrap_err();
        let msg = assert_fails_in_time("barrier with a silent peer", started, err);
        assert!(started.elapsed() >= SHORT / 2, "failed before the timeout: {msg}");
        done.send(()).unwrap();
        peer.join().unwrap();
    });
}

#[test]
fn bad_arguments_are_errors_before_anything_is_sent() {
    let _serial = serial();
    let port = free_port();
    let e = Store::tcp(HOST, port, 2, true, Duration::ZERO).unwrap_err();
    assert!(matches!(e, BridgeError::Invalid { .. }), "{e}");
    assert!(Store::tcp(HOST, port, 0, true, SHORT).is_err());

    // A group of one needs no peer.
    let (store, group) = join(port, 0, 1, SHORT);
    let e = ProcessGroup::gloo(&store, 1, 1, SHORT).unwrap_err();
    assert!(e.to_string().contains("rank 1"), "{e}");
    let i = Tensor::from_slice(&[1i64, 2]);
    let e = group.all_reduce_mean(&[&i]).unwrap_err().to_string();
    assert!(e.contains("Long") && e.contains("all_reduce_sum"), "{e}");
    assert_eq!(Vec::<i64>::try_from(&i).unwrap(), [1, 2]);
    let e = group.broadcast(&[&i], 1).unwrap_err();
    assert!(matches!(e, BridgeError::Invalid { .. }), "{e}");
    // A world of one: the sum and the mean are the tensor itself.
    let f = Tensor::from_slice(&[1.5f32, -2.0]);
    group.all_reduce_mean(&[&f]).unwrap();
    assert_eq!(floats(&f), [1.5, -2.0]);
}

#[test]
fn nccl_two_ranks_on_gpu() {
    let _serial = serial();
    if !dist::nccl_available() {
        // The reason, as ProcessGroup::nccl gives it.
        let store = Store::tcp(HOST, free_port(), 1, true, SHORT).unwrap();
        let e = ProcessGroup::nccl(&store, 0, 1, SHORT, 0).unwrap_err();
        eprintln!("skipped: {e}");
        return;
    }
    // NCCL refuses two ranks of a group on one GPU: one rank per device, at most two.
    let gpus = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    let world = gpus.min(2);
    assert!(world >= 1, "nccl_available() but tch sees no CUDA device");
    eprintln!("NCCL with {world} rank(s) on {gpus} GPU(s)");
    let port = free_port();
    let ranks: Vec<_> = (0..world)
        .map(|rank| {
            thread::spawn(move || {
                let store = Store::tcp(HOST, port, world, rank == 0, OK_TIMEOUT).unwrap();
                let group = ProcessGroup::nccl(&store, rank, world, OK_TIMEOUT, rank).unwrap();
                let cuda = Device::Cuda(rank);
                assert_eq!((group.rank(), group.world_size(), group.device()), (rank, world, cuda));
                let (r, w) = (rank as f32, world as f32);
                // Sums over the ranks of r and of r + 1.
                let (sum_r, sum_r1) = (w * (w - 1.0) / 2.0, w * (w + 1.0) / 2.0);

                // Two dtypes (two buckets), shapes that differ, a non-contiguous view.
                let a = Tensor::from_slice(&[1.0 + r, 2.0 + r, 3.0 + r]).to_device(cuda);
                let b = Tensor::from_slice(&[10 * (rank as i64 + 1)]).to_device(cuda);
                let c =
                    Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).to_device(cuda).reshape([2, 3])
                        * f64::from(r + 1.0);
                let ct = c.tr();
                assert!(!ct.is_contiguous());
                group.all_reduce_sum(&[&a, &b, &ct]).unwrap();
                assert_eq!(floats(&a), [w + sum_r, 2.0 * w + sum_r, 3.0 * w + sum_r]);
                assert_eq!(Vec::<i64>::try_from(&b.to_device(Device::Cpu)).unwrap(), [10 * sum_r1 as i64]);
                assert_eq!(floats(&c), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0].map(|v| v * sum_r1));

                let m = Tensor::from_slice(&[r, 10.0 * r]).to_device(cuda);
                group.all_reduce_mean(&[&m]).unwrap();
                assert_eq!(floats(&m), [sum_r / w, 10.0 * sum_r / w]);

                let root = world - 1;
                let x = Tensor::from_slice(&[r + 100.0, r + 200.0]).to_device(cuda);
                let y = Tensor::full([2, 2], rank as i64, (Kind::Int64, cuda));
                group.broadcast(&[&x, &y], root).unwrap();
                assert_eq!(floats(&x), [root as f32 + 100.0, root as f32 + 200.0]);
                assert_eq!(
                    Vec::<i64>::try_from(&y.flatten(0, -1).to_device(Device::Cpu)).unwrap(),
                    [root as i64; 4]
                );
                group.barrier().unwrap();

                // The group runs on another thread; a CPU tensor is an error, not a crash.
                let z = thread::spawn(move || {
                    let z = Tensor::from_slice(&[1.0f32]).to_device(cuda);
                    group.all_reduce_sum(&[&z]).unwrap();
                    let e = group.all_reduce_sum(&[&Tensor::from_slice(&[1.0f32])]);
                    eprintln!("a CPU tensor on NCCL: {e:?}");
                    assert!(e.is_err());
                    floats(&z)
                })
                .join()
                .unwrap();
                assert_eq!(z, [w]);
            })
        })
        .collect();
    for r in ranks {
        r.join().unwrap();
    }
}

#[test]
fn nccl_where_it_cannot_work_is_a_clear_error() {
    let _serial = serial();
    let store = Store::tcp(HOST, free_port(), 1, true, SHORT).unwrap();
    // Arguments are checked first, on every machine and build.
    let e = ProcessGroup::nccl(&store, 1, 1, SHORT, 0).unwrap_err();
    assert!(matches!(e, BridgeError::Invalid { .. }) && e.to_string().contains("rank 1"), "{e}");
    let e = ProcessGroup::nccl(&store, 0, 1, Duration::ZERO, 0).unwrap_err();
    assert!(matches!(e, BridgeError::Invalid { .. }), "{e}");

    if dist::nccl_available() {
        // A device this machine lacks.
        let gpus = usize::try_from(tch::Cuda::device_count()).unwrap();
        let e = ProcessGroup::nccl(&store, 0, 1, SHORT, gpus).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, BridgeError::Invalid { .. }) && msg.contains(&format!("cuda:{gpus}")), "{msg}");
    } else {
        // No NCCL in this build, or no GPU: said so, before anything reaches c10d.
        let e = ProcessGroup::nccl(&store, 0, 1, SHORT, 0).unwrap_err();
        let msg = e.to_string();
        eprintln!("{msg}");
        assert!(matches!(e, BridgeError::Unavailable { .. }), "{msg}");
        assert!(msg.starts_with("c10d::ProcessGroupNCCL: "), "{msg}");
        assert!(msg.contains("no NCCL") || msg.contains("no CUDA device"), "{msg}");
    }
    // The store is still good for a Gloo group.
    let group = ProcessGroup::gloo(&store, 0, 1, SHORT).unwrap();
    let t = Tensor::from_slice(&[2.0f32]);
    group.all_reduce_sum(&[&t]).unwrap();
    assert_eq!(floats(&t), [2.0]);
}
