// The handles dist.cpp and dist_nccl.cpp share: a store and a process group of either
// backend. Both are plain structs Rust owns and frees; each holds c10::intrusive_ptr
// references, so a group keeps its store alive however Rust drops them.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <string>

struct SbxStore {
  c10::intrusive_ptr<c10d::Store> store;
  std::string host;
  // Groups made on this store so far: the next one's key prefix. Gloo's and NCCL's
  // rendezvous keys are the same for every group, so each group gets its own namespace
  // in the store (as torch.distributed does); ranks must create groups in the same order.
  std::atomic<int> groups{0};
};

struct SbxGroup {
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
  // The CUDA device of an NCCL group; -1 for Gloo. NCCL work is waited for on the
  // device, not the host, and the group is shut down (flushed), not just released.
  int cuda_device = -1;
};
