// slimbench's bridge to c10d, PyTorch's distributed engine: a TCPStore for the
// rendezvous, a Gloo process group, and the collectives of every group (src/dist.rs
// wraps them safely). NCCL groups are made in dist_nccl.cpp, compiled only in builds
// with the CUDA and NCCL headers; they are SbxGroups too and run the same code here.
//
// Conventions are bridge.cpp's (guarded.hpp): no C++ exception crosses, a failing call
// returns null / -1 with its message in sbx_last_error. The handles are dist.hpp's.
//
// The wheel has no gloo headers: gloo-decl/ declares what ProcessGroupGloo.hpp names
// (see its README). Only exported libtorch functions are called on ProcessGroupGloo
// (constructor, Options, device factories); collectives go through c10d::Backend's
// virtual interface, so no inline ProcessGroupGloo or gloo code is compiled here.
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "dist.hpp"
#include "guarded.hpp"

using sbx::guarded;
using std::chrono::milliseconds;

namespace {

// c10d's flight recorder (a process-wide log of recent collectives, for debugging
// hangs) inserts each process group into a std::map before taking its own mutex
// (FlightRecorderDetail.hpp, recordWithResetEnabled, torch 2.11). With several groups
// in one process, as slimbench's in-process replicas are, two first collectives at
// once corrupt the map: SIGSEGV in _Rb_tree_insert_and_rebalance under
// ProcessGroupGloo::enqueue, seen in 8 of 40 runs of the dist tests. The recorder reads
// TORCH_FR_BUFFER_SIZE once, when first used; setting it to 0 here, before main and so
// before any thread exists, turns it off. A value the user set is kept (they get the
// recorder, and the race).
__attribute__((constructor)) void disable_flight_recorder() {
  setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/0);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Wait for a collective. Gloo's own per-operation timeout (the group's) normally fires
// first, with a message naming the operation; this bound is the backstop for an
// operation that never started, so a dead peer is an error and never a hang.
//
// NCCL work is waited for without a timeout, which makes the caller's CUDA stream wait
// for it and leaves the host free to queue more work, as torch.distributed does (an
// explicit timeout would make every collective block the host). Its timeout is kept
// by c10d's watchdog thread instead; see ProcessGroup::nccl in dist.rs.
void wait_for(const SbxGroup& g, const c10::intrusive_ptr<c10d::Work>& work) {
  if (g.cuda_device >= 0) {
    work->wait();
  } else {
    work->wait(2 * g.timeout);
  }
}

// The tensors of one collective, grouped by dtype and device: each group is reduced as
// one contiguous buffer, in one call. A single contiguous tensor is its own buffer;
// otherwise the tensors are copied into a flat buffer and back afterwards (which is
// also what makes non-contiguous tensors work: gloo reads raw memory).
struct Bucket {
  std::vector<at::Tensor> tensors;
  at::Tensor buffer;

  void pack() {
    if (tensors.size() == 1 && tensors[0].is_contiguous()) {
      buffer = tensors[0];
      return;
    }
    std::vector<at::Tensor> flat;
    flat.reserve(tensors.size());
    for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
    buffer = at::cat(flat);
  }

  void unpack() {
    if (buffer.is_same(tensors[0])) return;
    int64_t offset = 0;
    for (auto& t : tensors) {
      t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
};

std::vector<Bucket> buckets(const at::Tensor* const* tensors, size_t n) {
  std::map<std::tuple<int, int, int>, size_t> index;
  std::vector<Bucket> out;
  for (size_t i = 0; i < n; i++) {
    const at::Tensor& t = *tensors[i];
    if (!t.defined()) throw std::invalid_argument("tensor " + std::to_string(i) + " is undefined");
    if (t.layout() != at::kStrided) throw std::invalid_argument("only dense tensors can be reduced");
    if (t.numel() == 0) continue;
    auto key = std::make_tuple(static_cast<int>(t.scalar_type()), static_cast<int>(t.device().type()),
                               static_cast<int>(t.device().index()));
    auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) out.emplace_back();
    out[it->second].tensors.push_back(t);
  }
  for (auto& b : out) b.pack();
  return out;
}

int64_t to_int(size_t v, const char* what) {
  if (v > static_cast<size_t>(std::numeric_limits<int>::max())) {
    throw std::invalid_argument(std::string(what) + " is too large");
  }
  return static_cast<int64_t>(v);
}

}  // namespace

extern "C" {

// A TCPStore: the server (it listens on `port` and waits until `world_size` ranks,
// itself included, have joined) or a client of the server at host:port. Null on
// failure (address in use, no server within the timeout, ...).
SbxStore* sbx_tcp_store_new(const char* host, uint16_t port, size_t world_size, int is_server,
                            int64_t timeout_ms) {
  return guarded(
      [&]() -> SbxStore* {
        c10d::TCPStoreOptions opts;
        opts.port = port;
        opts.isServer = is_server != 0;
        opts.numWorkers = static_cast<size_t>(to_int(world_size, "world size"));
        opts.waitWorkers = true;
        opts.timeout = milliseconds(timeout_ms);
        auto store = c10::make_intrusive<c10d::TCPStore>(host, opts);
        auto* out = new SbxStore();
        out->store = std::move(store);
        out->host = host;
        return out;
      },
      (SbxStore*)nullptr);
}

void sbx_store_free(SbxStore* s) { delete s; }

// A Gloo process group of `size` ranks on `store`; returns once every rank has
// connected to every other (or null after the timeout). The gloo device binds to the
// store's host when that is a loopback address (one machine, containers without a
// resolvable hostname), else to the address this machine's hostname resolves to
// (torch.distributed's default, GLOO_SOCKET_IFNAME respected).
SbxGroup* sbx_gloo_new(SbxStore* s, size_t rank, size_t size, int64_t timeout_ms) {
  return guarded(
      [&]() -> SbxGroup* {
        milliseconds timeout(timeout_ms);
        c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> opts;
        if (is_loopback(s->host)) {
          opts = c10d::ProcessGroupGloo::Options::create(timeout);
          std::string addr = s->host == "localhost" ? "127.0.0.1" : s->host;
          opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr));
        } else {
          opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
        }
        opts->timeout = timeout;
        auto prefix = "slimbench/gloo/" + std::to_string(s->groups.fetch_add(1));
        auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, s->store);
        c10::intrusive_ptr<c10d::Backend> backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
            store, to_int(rank, "rank"), to_int(size, "world size"), opts);
        return new SbxGroup{std::move(backend), timeout};
      },
      (SbxGroup*)nullptr);
}

// Blocks until the group's worker threads have finished the queued collectives (each
// bounded by the group's timeout). An NCCL group is shut down first: its destructor
// alone would abort the communicators, cutting short collectives still running on the
// GPU (torch.distributed's destroy_process_group also shuts down); if shutting down
// fails, it is aborted, since nothing can be reported from here.
void sbx_group_free(SbxGroup* g) {
  if (g != nullptr && g->cuda_device >= 0) {
    try {
      g->backend->shutdown();
    } catch (...) {
      try {
        g->backend->abort();
      } catch (...) {
      }
    }
  }
  delete g;
}

// Sum `tensors` in place over every rank, or average them (`mean`: floating point
// only, checked before anything is sent). 0 on success, -1 on failure.
int sbx_group_all_reduce(SbxGroup* g, const at::Tensor* const* tensors, size_t n, int mean) {
  return guarded(
      [&] {
        if (mean) {
          for (size_t i = 0; i < n; i++) {
            auto t = tensors[i]->scalar_type();
            if (!at::isFloatingType(t) && !at::isComplexType(t)) {
              throw std::invalid_argument(std::string("the mean of a ") + c10::toString(t) +
                                          " tensor is not representable; all_reduce_sum it instead");
            }
          }
        }
        auto bs = buckets(tensors, n);
        c10d::AllreduceOptions opts;
        opts.reduceOp = c10d::ReduceOp::SUM;
        opts.timeout = g->timeout;
        // Every collective is queued first (gloo runs them in order on its threads).
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        for (auto& b : bs) {
          std::vector<at::Tensor> one{b.buffer};
          works.push_back(g->backend->allreduce(one, opts));
        }
        for (auto& w : works) wait_for(*g, w);
        for (auto& b : bs) {
          if (mean) b.buffer.div_(g->backend->getSize());
          b.unpack();
        }
        return 0;
      },
      -1);
}

// Overwrite `tensors` on every rank with rank `root`'s. 0 on success, -1 on failure.
int sbx_group_broadcast(SbxGroup* g, const at::Tensor* const* tensors, size_t n, size_t root) {
  return guarded(
      [&] {
        auto bs = buckets(tensors, n);
        c10d::BroadcastOptions opts;
        opts.rootRank = to_int(root, "root rank");
        opts.rootTensor = 0;
        opts.timeout = g->timeout;
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        for (auto& b : bs) {
          std::vector<at::Tensor> one{b.buffer};
          works.push_back(g->backend->broadcast(one, opts));
        }
        for (auto& w : works) wait_for(*g, w);
        for (auto& b : bs) b.unpack();
        return 0;
      },
      -1);
}

// Return once every rank has reached the barrier (and finished its earlier
// collectives). 0 on success, -1 on failure.
int sbx_group_barrier(SbxGroup* g) {
  return guarded(
      [&] {
        c10d::BarrierOptions opts;
        opts.timeout = g->timeout;
        // NCCL's barrier is an all-reduce on a device it would otherwise guess.
        if (g->cuda_device >= 0) opts.device_ids = {g->cuda_device};
        wait_for(*g, g->backend->barrier(opts));
        return 0;
      },
      -1);
}

}  // extern "C"
